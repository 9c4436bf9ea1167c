"""Conversations and their items.

Schema
------
``conversations`` holds one row per conversation:

- ``id`` (primary key): the ``conv_…`` id.
- ``owner``: the API key's owner; every read and write filters on it, so another owner sees nothing.
- ``created_at``: unix seconds, as in the Conversation object.
- ``metadata``: the Conversation's metadata map, JSON TEXT.
- ``next_position``: the position the next appended item gets. An append first advances it with
  ``UPDATE … RETURNING`` and takes the positions it skipped over; that update locks the conversation (its
  row on PostgreSQL, the database on SQLite) until the append commits, so concurrent appends to one
  conversation queue up, never interleave, and never reuse a position. Positions only grow: deleting an
  item leaves a gap, and a paging cursor stays valid.

``conversation_items`` holds the items, one row each:

- ``conversation_id`` + ``position`` (primary key): the item's place; listing orders by ``position``.
- ``item_id``: the item's own id (``msg_…``, ``fc_…`` …), unique within its conversation; it is what
  clients name in ``GET/DELETE …/items/{item_id}`` and in the ``after`` cursor.
- ``item``: the item JSON (orjson) as TEXT, returned with the key order it was written in.

``conversation_id`` is a foreign key with ``ON DELETE CASCADE``: deleting a conversation deletes its items.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("next_position", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "conversation_items",
        sa.Column(
            "conversation_id",
            sa.String(),
            sa.ForeignKey("conversations.id", ondelete="CASCADE", name="fk_conversation_items_conversation_id"),
            primary_key=True,
        ),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("item_id", sa.String(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.UniqueConstraint("conversation_id", "item_id", name="uq_conversation_items_item_id"),
    )


def downgrade() -> None:
    op.drop_table("conversation_items")
    op.drop_table("conversations")
