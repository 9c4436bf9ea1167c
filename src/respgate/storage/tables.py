"""The tables as the store's queries see them.

The migrations under `migrations/versions` are the source of truth for the schema; these definitions
mirror the head revision and must change together with a new revision.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, MetaData, String, Table, Text

metadata = MetaData()

responses = Table(
    "responses",
    metadata,
    Column("id", String, primary_key=True),
    Column("owner", String, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("status", String, nullable=False),
    # No foreign key on purpose: deleting an ancestor must leave its descendants in place.
    Column("previous_response_id", String, nullable=True),
    Column("response", Text, nullable=False),
    Column("input_items", Text, nullable=False),
)

response_events = Table(
    "response_events",
    metadata,
    Column(
        "response_id",
        String,
        ForeignKey("responses.id", ondelete="CASCADE", name="fk_response_events_response_id"),
        primary_key=True,
    ),
    Column("events", Text, nullable=False),
)
