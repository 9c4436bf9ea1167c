"""Loading history within a byte budget: sizes are measured first, and only what fits is read."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import insert, select, text, update

from respgate.storage.base import StoredConversation, StoredResponse
from respgate.storage.migrate import alembic_config
from respgate.storage.sql import SqlResponseStore, create_store_engine, open_store
from respgate.storage.tables import conversation_items, conversations, response_events, responses


def message(text: str, role: str = "user") -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {
        "id": f"msg_{secrets.token_hex(8)}",
        "type": "message",
        "role": role,
        "content": [{"type": kind, "text": text}],
        "status": "completed",
    }


def link(owner: str, previous: str | None, text: str) -> StoredResponse:
    response_id = f"resp_{secrets.token_hex(24)}"
    return StoredResponse(
        id=response_id,
        owner=owner,
        created_at=1_764_000_000,
        status="completed",
        previous_response_id=previous,
        # The echoed request fields (here a long `instructions`) are not part of the context.
        response={"id": response_id, "instructions": "x" * 5000, "output": [message(f"re: {text}", "assistant")]},
        input_items=[message(text)],
    )


def size_of(record: StoredResponse) -> int:
    return len(orjson.dumps(record.input_items)) + len(orjson.dumps(record.response["output"]))


def items_of(records: list[StoredResponse]) -> list[dict[str, Any]]:
    return [item for record in records for item in [*record.input_items, *record.response["output"]]]


async def save_links(store: SqlResponseStore, owner: str, texts: list[str]) -> list[StoredResponse]:
    records: list[StoredResponse] = []
    for body in texts:
        record = link(owner, records[-1].id if records else None, body)
        await store.save(record)
        records.append(record)
    return records


async def test_a_chain_is_measured_by_its_input_and_output_json(store: SqlResponseStore, owner: str) -> None:
    records = await save_links(store, owner, ["one", "ünïcödé ✓", "three"])
    history = await store.history(records[-1].id, owner, budget=10**9, truncate=False)
    assert history is not None
    assert history.size == history.loaded == sum(size_of(record) for record in records)
    assert history.items == items_of(records) and not history.truncated


@pytest.mark.parametrize("truncate", [False, True])
async def test_a_chain_that_fits_exactly_is_loaded_whole(
    store: SqlResponseStore, owner: str, truncate: bool
) -> None:
    records = await save_links(store, owner, ["a" * 300, "b" * 300])
    budget = sum(size_of(record) for record in records)
    history = await store.history(records[-1].id, owner, budget=budget, truncate=truncate)
    assert history is not None and history.items == items_of(records) and not history.truncated


async def test_over_the_budget_truncation_keeps_the_newest_whole_responses(
    store: SqlResponseStore, owner: str
) -> None:
    records = await save_links(store, owner, [f"{n}" * 400 for n in range(5)])
    budget = sum(size_of(record) for record in records[2:]) + size_of(records[1]) - 1
    history = await store.history(records[-1].id, owner, budget=budget, truncate=True)
    assert history is not None
    assert history.items == items_of(records[2:])
    assert history.truncated and history.gap is None
    assert history.loaded == sum(size_of(record) for record in records[2:])
    assert history.size == sum(size_of(record) for record in records)


async def test_over_the_budget_all_or_nothing_loads_nothing(store: SqlResponseStore, owner: str) -> None:
    records = await save_links(store, owner, ["x" * 400] * 3)
    total = sum(size_of(record) for record in records)
    history = await store.history(records[-1].id, owner, budget=total - 1, truncate=False)
    assert history is not None
    assert (history.items, history.loaded, history.size, history.truncated) == ([], 0, total, True)


async def test_the_newest_response_alone_over_the_budget_leaves_nothing(
    store: SqlResponseStore, owner: str
) -> None:
    (record,) = await save_links(store, owner, ["y" * 1000])
    history = await store.history(record.id, owner, budget=size_of(record) - 1, truncate=True)
    assert history is not None and history.items == [] and history.truncated


async def corrupt(database_url: str, table: Any, where: Any, **values: str) -> None:
    engine = create_store_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(table).where(where).values(**values))
    finally:
        await engine.dispose()


async def test_responses_beyond_the_budget_are_never_read(
    store: SqlResponseStore, owner: str, database_url: str
) -> None:
    """The oldest responses hold JSON no one could decode (nor the database cut the output out of):
    the walk measures them without reading them."""
    records = await save_links(store, owner, ["old", "older", "new"])
    for record in records[:2]:
        await corrupt(
            database_url, responses, responses.c.id == record.id, response="{not json", input_items="[not json"
        )
    newest = size_of(records[-1])
    history = await store.history(records[-1].id, owner, budget=newest, truncate=True)
    assert history is not None and history.items == items_of(records[-1:])
    refused = await store.history(records[-1].id, owner, budget=newest, truncate=False)
    assert refused is not None and refused.items == [] and refused.truncated


async def new_conversation(store: SqlResponseStore, owner: str, items: list[dict[str, Any]]) -> str:
    created = StoredConversation(
        id=f"conv_{secrets.token_hex(24)}", owner=owner, created_at=1_764_000_000, metadata={}
    )
    await store.conversations.create_conversation(created, items)
    return created.id


async def test_a_conversation_over_the_budget_keeps_its_newest_items(store: SqlResponseStore, owner: str) -> None:
    items = [message(f"{n}" * 200) for n in range(6)]
    conversation_id = await new_conversation(store, owner, items)
    sizes = [len(orjson.dumps(item)) for item in items]
    whole = await store.conversations.history(conversation_id, owner, budget=sum(sizes), truncate=False)
    assert whole is not None and whole.items == items and not whole.truncated and whole.size == sum(sizes)

    budget = sum(sizes[3:]) + sizes[2] - 1
    newest = await store.conversations.history(conversation_id, owner, budget=budget, truncate=True)
    assert newest is not None and newest.items == items[3:] and newest.truncated
    assert (newest.loaded, newest.size) == (sum(sizes[3:]), sum(sizes))

    refused = await store.conversations.history(conversation_id, owner, budget=budget, truncate=False)
    assert refused is not None and (refused.items, refused.loaded, refused.truncated) == ([], 0, True)
    nothing = await store.conversations.history(conversation_id, owner, budget=sizes[-1] - 1, truncate=True)
    assert nothing is not None and nothing.items == [] and nothing.truncated


async def test_conversation_items_beyond_the_budget_are_never_read(
    store: SqlResponseStore, owner: str, database_url: str
) -> None:
    items = [message("old"), message("new")]
    conversation_id = await new_conversation(store, owner, items)
    await corrupt(
        database_url, conversation_items, conversation_items.c.item_id == items[0]["id"], item="{not json"
    )
    history = await store.conversations.history(
        conversation_id, owner, budget=len(orjson.dumps(items[1])), truncate=True
    )
    assert history is not None and history.items == items[1:]


async def test_an_empty_or_unknown_conversation(store: SqlResponseStore, owner: str) -> None:
    conversation_id = await new_conversation(store, owner, [])
    empty = await store.conversations.history(conversation_id, owner, budget=0, truncate=False)
    assert empty is not None and (empty.items, empty.size, empty.truncated) == ([], 0, False)
    assert await store.conversations.history(conversation_id, owner + "-other", budget=0, truncate=False) is None


async def test_upgrading_measures_existing_rows_and_keeps_their_events(
    fresh_database_url: str, owner: str
) -> None:
    """Stored before sizes existed: the migration measures them as a save would, and the table
    rebuild SQLite needs does not take the events (which reference it) with it."""
    records = [link(owner, None, "first"), link(owner, None, "ünïcödé ✓ second")]
    items = [message("kept"), message("ünï ✓")]
    engine = create_store_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0002"))
            for record in records:
                await connection.execute(
                    insert(responses).values(
                        id=record.id,
                        owner=owner,
                        created_at=record.created_at,
                        status=record.status,
                        previous_response_id=None,
                        response=orjson.dumps(record.response).decode(),
                        input_items=orjson.dumps(record.input_items).decode(),
                    )
                )
                await connection.execute(
                    insert(response_events).values(response_id=record.id, events='[{"type":"response.created"}]')
                )
            await connection.execute(
                insert(conversations).values(
                    id="conv_old", owner=owner, created_at=1, metadata="{}", next_position=2
                )
            )
            await connection.execute(
                insert(conversation_items),
                [
                    {
                        "conversation_id": "conv_old",
                        "position": n,
                        "item_id": item["id"],
                        "item": orjson.dumps(item).decode(),
                    }
                    for n, item in enumerate(items)
                ],
            )
            await connection.commit()
    finally:
        await engine.dispose()
    store = await open_store(fresh_database_url)
    try:
        for record in records:
            history = await store.history(record.id, owner, budget=10**9, truncate=False)
            assert history is not None and history.size == size_of(record) and history.items == items_of([record])
            assert await store.events(record.id, owner) == [{"type": "response.created"}]
        conversation = await store.conversations.history("conv_old", owner, budget=10**9, truncate=False)
        assert conversation is not None and conversation.items == items
        assert conversation.size == sum(len(orjson.dumps(item)) for item in items)
    finally:
        await store.aclose()
    engine = create_store_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # Foreign keys are back on for the store's connections after the migration.
                assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await connection.execute(select(response_events.c.response_id))).all()
    finally:
        await engine.dispose()
