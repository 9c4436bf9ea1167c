"""The tables as the store's queries see them.

The migrations under `migrations/versions` are the source of truth for the schema; these definitions
mirror the head revision and must change together with a new revision.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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
    # The bytes this response adds to a continuing request's context: its input items' JSON plus its
    # output items' JSON. Read instead of the content when a chain is measured against the cap.
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("response", Text, nullable=False),
    Column("input_items", Text, nullable=False),
    # The retention purge takes the oldest responses first.
    Index("ix_responses_created_at", "created_at"),
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

conversations = Table(
    "conversations",
    metadata,
    Column("id", String, primary_key=True),
    Column("owner", String, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("next_position", BigInteger, nullable=False),
)

conversation_items = Table(
    "conversation_items",
    metadata,
    Column(
        "conversation_id",
        String,
        ForeignKey("conversations.id", ondelete="CASCADE", name="fk_conversation_items_conversation_id"),
        primary_key=True,
    ),
    Column("position", BigInteger, primary_key=True),
    Column("item_id", String, nullable=False),
    # The item's JSON bytes, summed against the context cap without reading the items.
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("item", Text, nullable=False),
    UniqueConstraint("conversation_id", "item_id", name="uq_conversation_items_item_id"),
)

background_jobs = Table(
    "background_jobs",
    metadata,
    Column("response_id", String, primary_key=True),
    Column("owner", String, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("request", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("holder", String, nullable=True),
    Column("lease_expires_at", BigInteger, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Index("ix_background_jobs_lease_expires_at", "lease_expires_at"),
)
