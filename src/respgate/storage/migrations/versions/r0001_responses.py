"""Responses and their streamed events.

Schema
------
``responses`` holds one row per stored response:

- ``id`` (primary key): the ``resp_…`` id.
- ``owner``: the API key's owner; every read and delete filters on it, so another owner sees nothing.
- ``created_at``: unix seconds, as in the Response object.
- ``status``: the Response status (``queued``, ``in_progress``, ``completed`` …), kept as a column so it
  can be read without decoding the JSON.
- ``previous_response_id``: the parent in a conversation chain. Deliberately *not* a foreign key:
  deleting a response leaves its descendants and their link in place, so a chain walk stops at the gap
  and the caller can see (from the oldest returned row's ``previous_response_id``) that history is missing.
- ``response``: the full Response JSON (orjson), as TEXT so it is returned byte-for-byte with the key
  order it was written in (JSONB would reorder keys and costs a parse on every write).
- ``input_items``: the request's own input items (with ids), JSON TEXT.

``response_events`` holds the streamed events of a response (a JSON TEXT list of event objects, for
``GET /v1/responses/{id}?stream=true`` replay). It is a separate table so that ``get`` and ``chain`` never
read the blob; ``response_id`` is both its primary key and a foreign key to ``responses`` with
``ON DELETE CASCADE``, so deleting a response deletes its events.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("previous_response_id", sa.String(), nullable=True),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("input_items", sa.Text(), nullable=False),
    )
    op.create_table(
        "response_events",
        sa.Column(
            "response_id",
            sa.String(),
            sa.ForeignKey("responses.id", ondelete="CASCADE", name="fk_response_events_response_id"),
            primary_key=True,
        ),
        sa.Column("events", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("response_events")
    op.drop_table("responses")
