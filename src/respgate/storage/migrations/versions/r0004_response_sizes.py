"""Context sizes on responses and conversation items; an index on the responses' age.

Schema
------
- ``responses.size``: the bytes this response adds to the context of a request that continues from it,
  its ``input_items`` JSON plus its output items' JSON (UTF-8). A chain's sizes are walked before any
  content is read, so a history larger than the context cap is refused (or truncated) without being
  loaded.
- ``conversation_items.size``: the item's JSON bytes, summed in SQL for the same purpose.
- ``ix_responses_created_at``: the retention purge deletes the oldest responses in batches; the index
  makes each batch a range scan instead of a full scan.

Both ``size`` columns are placed before the JSON columns. On SQLite a row's columns are read in order,
and a value beyond a large one is only reached by following the large value's overflow pages: the
chain walk and the conversation sum would read every byte of the history they mean to skip. SQLite
cannot add a column anywhere but last, so its tables are rebuilt (with foreign keys off for the
migration; see ``respgate.storage.migrate``). PostgreSQL stores large values out of line, so it just
adds the columns.

Existing rows are backfilled from their stored JSON (SQLite's ``json_extract``, PostgreSQL's ``->``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

_BACKFILL = {
    "sqlite": (
        "UPDATE responses SET size = length(CAST(input_items AS BLOB))"
        " + coalesce(length(CAST(json_extract(response, '$.output') AS BLOB)), 0)",
        "UPDATE conversation_items SET size = length(CAST(item AS BLOB))",
    ),
    "postgresql": (
        "UPDATE responses SET size = octet_length(input_items)"
        " + coalesce(octet_length((response::json -> 'output')::text), 0)",
        "UPDATE conversation_items SET size = octet_length(item)",
    ),
}


def _size_column() -> sa.Column[int]:
    return sa.Column("size", sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, before in (("responses", "response"), ("conversation_items", "item")):
        if dialect == "sqlite":
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.add_column(_size_column(), insert_before=before)
        else:
            op.add_column(table, _size_column())
    for statement in _BACKFILL[dialect]:
        op.execute(statement)
    op.create_index("ix_responses_created_at", "responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_created_at", table_name="responses")
    for table in ("conversation_items", "responses"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("size")
