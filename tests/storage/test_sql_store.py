"""The SQL response store's behaviour, on SQLite and on PostgreSQL (the `backend` parameter)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from respgate.protocol.errors import ServerError
from respgate.storage.base import History, StoredResponse
from respgate.storage.sql import SqlResponseStore, open_store

OpenStore = Callable[[], Awaitable[SqlResponseStore]]


def new_id() -> str:
    return f"resp_{secrets.token_hex(24)}"


def make_record(
    owner: str,
    *,
    response_id: str | None = None,
    previous: str | None = None,
    status: str = "completed",
    text: str = "Hello there.",
) -> StoredResponse:
    response_id = response_id or new_id()
    return StoredResponse(
        id=response_id,
        owner=owner,
        created_at=1_764_000_000,
        status=status,
        previous_response_id=previous,
        response={
            "id": response_id,
            "object": "response",
            "status": status,
            "previous_response_id": previous,
            "output": [
                {
                    "id": f"msg_{secrets.token_hex(8)}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "usage": None,
            "metadata": {"ünïcode": "✓ 日本語", "nested": {"list": [1, 2.5, None, True]}},
        },
        input_items=[
            {
                "id": f"msg_{secrets.token_hex(8)}",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            }
        ],
    )


async def save_chain(store: SqlResponseStore, owner: str, length: int) -> list[StoredResponse]:
    records: list[StoredResponse] = []
    previous: str | None = None
    for turn in range(length):
        record = make_record(owner, previous=previous, text=f"turn {turn}")
        await store.save(record)
        records.append(record)
        previous = record.id
    return records


def chain_items(records: list[StoredResponse]) -> list[dict[str, Any]]:
    """What a chain of `records` contributes to a context: each one's input, then its output."""
    return [item for record in records for item in [*record.input_items, *record.response["output"]]]


async def walk(
    store: SqlResponseStore, response_id: str, owner: str, *, budget: int = 2**40, truncate: bool = False
) -> History | None:
    return await store.history(response_id, owner, budget=budget, truncate=truncate)


async def walked_items(store: SqlResponseStore, response_id: str, owner: str) -> list[dict[str, Any]] | None:
    history = await walk(store, response_id, owner)
    return None if history is None else history.items


async def test_save_then_get_returns_the_same_record(store: SqlResponseStore, owner: str) -> None:
    record = make_record(owner, previous="resp_parent_not_stored")
    await store.save(record)
    loaded = await store.get(record.id, owner)
    assert loaded == record
    assert loaded is not None
    assert list(loaded.response) == list(record.response)  # key order survives the round trip


async def test_get_of_an_unknown_id_is_none(store: SqlResponseStore, owner: str) -> None:
    assert await store.get(new_id(), owner) is None


async def test_save_again_replaces_the_response(store: SqlResponseStore, owner: str) -> None:
    started = make_record(owner, status="in_progress", text="")
    await store.save(started, events=[{"type": "response.created"}])
    finished = make_record(owner, response_id=started.id, status="completed", text="Done.")
    await store.save(finished, events=[{"type": "response.created"}, {"type": "response.completed"}])
    assert await store.get(started.id, owner) == finished
    assert await store.events(started.id, owner) == [{"type": "response.created"}, {"type": "response.completed"}]


async def test_save_without_events_keeps_the_stored_events(store: SqlResponseStore, owner: str) -> None:
    record = make_record(owner)
    await store.save(record, events=[{"type": "response.created", "sequence_number": 0}])
    await store.save(make_record(owner, response_id=record.id, text="edited"))
    assert await store.events(record.id, owner) == [{"type": "response.created", "sequence_number": 0}]


async def test_events_round_trip_in_order(store: SqlResponseStore, owner: str) -> None:
    record = make_record(owner)
    events: list[dict[str, Any]] = [
        {"type": "response.output_text.delta", "sequence_number": n, "delta": f"tök{n}"} for n in range(300)
    ]
    await store.save(record, events=events)
    assert await store.events(record.id, owner) == events


async def test_events_are_none_when_none_were_saved(store: SqlResponseStore, owner: str) -> None:
    record = make_record(owner)
    await store.save(record)
    assert await store.events(record.id, owner) is None
    assert await store.events(new_id(), owner) is None


async def test_another_owner_sees_nothing(store: SqlResponseStore, owner: str) -> None:
    parent, child = await save_chain(store, owner, 2)
    await store.save(make_record(owner, response_id=child.id, previous=parent.id), events=[{"type": "x"}])
    stranger = f"{owner}-stranger"
    assert await store.get(child.id, stranger) is None
    assert await walk(store, child.id, stranger) is None
    assert await store.events(child.id, stranger) is None
    assert await store.delete(child.id, stranger) is False
    assert await store.get(child.id, owner) is not None  # the failed delete left it alone


async def test_an_id_cannot_be_taken_over_by_another_owner(store: SqlResponseStore, owner: str) -> None:
    record = make_record(owner)
    await store.save(record, events=[{"type": "mine"}])
    with pytest.raises(ServerError) as raised:
        await store.save(make_record(f"{owner}-stranger", response_id=record.id), events=[{"type": "theirs"}])
    assert raised.value.code == "response_id_conflict"
    assert await store.get(record.id, owner) == record
    assert await store.events(record.id, owner) == [{"type": "mine"}]


@pytest.mark.parametrize("length", [1, 2, 10, 50])
async def test_chain_is_the_response_and_its_ancestors_oldest_first(
    store: SqlResponseStore, owner: str, length: int
) -> None:
    records = await save_chain(store, owner, length)
    history = await walk(store, records[-1].id, owner)
    assert history is not None
    assert history.items == chain_items(records)
    assert (history.truncated, history.gap, history.loaded) == (False, None, history.size)
    assert await walked_items(store, records[0].id, owner) == chain_items(records[:1])


async def test_chain_of_an_unknown_id_is_none(store: SqlResponseStore, owner: str) -> None:
    assert await walk(store, new_id(), owner) is None


async def test_chain_from_a_middle_response_ignores_later_and_sibling_branches(
    store: SqlResponseStore, owner: str
) -> None:
    first, second, third = await save_chain(store, owner, 3)
    branch = make_record(owner, previous=second.id, text="another branch")
    await store.save(branch)
    assert await walked_items(store, second.id, owner) == chain_items([first, second])
    assert await walked_items(store, branch.id, owner) == chain_items([first, second, branch])
    assert await walked_items(store, third.id, owner) == chain_items([first, second, third])


async def test_chain_stops_at_an_ancestor_of_another_owner(store: SqlResponseStore, owner: str) -> None:
    theirs = make_record(f"{owner}-stranger")
    await store.save(theirs)
    mine = make_record(owner, previous=theirs.id)
    await store.save(mine)
    history = await walk(store, mine.id, owner)
    assert history is not None and history.items == chain_items([mine]) and history.gap == theirs.id


async def test_chain_through_a_deleted_ancestor_returns_what_follows_the_gap(
    store: SqlResponseStore, owner: str
) -> None:
    first, second, third, fourth = await save_chain(store, owner, 4)
    assert await store.delete(second.id, owner) is True
    remaining = await walk(store, fourth.id, owner)
    assert remaining is not None and remaining.items == chain_items([third, fourth])
    # The caller can tell the history is incomplete: it names the response that is gone.
    assert remaining.gap == second.id and remaining.truncated is False
    assert await walked_items(store, first.id, owner) == chain_items([first])


async def test_chain_length_is_capped_even_through_a_cycle(database_url: str, owner: str) -> None:
    store = await open_store(database_url, max_chain_length=7)
    try:
        a, b = make_record(owner), make_record(owner)
        await store.save(a)
        await store.save(make_record(owner, response_id=b.id, previous=a.id))
        cycle = make_record(owner, response_id=a.id, previous=b.id)
        await store.save(cycle)  # a corrupt cycle
        # Longer than the longest walk counts as over any budget: all or nothing gives nothing ...
        whole = await walk(store, a.id, owner)
        assert whole is not None and whole.items == [] and whole.truncated and whole.gap is None
        # ... and truncation gives the newest seven.
        newest = await walk(store, a.id, owner, truncate=True)
        assert newest is not None and newest.truncated and newest.gap is None
        assert len(newest.items) == 7 * 2 and newest.items[-2:] == chain_items([cycle])
    finally:
        await store.aclose()


async def test_delete_removes_the_response_and_its_events(store: SqlResponseStore, owner: str) -> None:
    record = make_record(owner)
    await store.save(record, events=[{"type": "response.created"}])
    assert await store.delete(record.id, owner) is True
    assert await store.get(record.id, owner) is None
    assert await store.events(record.id, owner) is None
    assert await store.delete(record.id, owner) is False
    # Saved again without events, the id must not find the old events left behind.
    await store.save(record)
    assert await store.events(record.id, owner) is None


async def test_delete_leaves_no_event_rows(store: SqlResponseStore, owner: str, database_url: str) -> None:
    record = make_record(owner)
    await store.save(record, events=[{"type": "response.created"}])
    await store.delete(record.id, owner)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                text("SELECT count(*) FROM response_events WHERE response_id = :id"), {"id": record.id}
            )
    finally:
        await engine.dispose()
    assert count == 0


async def test_a_write_through_one_replica_is_read_at_once_through_another(
    open_stores: OpenStore, owner: str
) -> None:
    writer, reader = await open_stores(), await open_stores()
    record = make_record(owner)
    assert await reader.get(record.id, owner) is None  # the reader's pool is warm before the write
    await writer.save(record, events=[{"type": "response.created"}])
    assert await reader.get(record.id, owner) == record
    assert await walked_items(reader, record.id, owner) == chain_items([record])
    assert await reader.events(record.id, owner) == [{"type": "response.created"}]
    finished = make_record(owner, response_id=record.id, text="finished")
    await writer.save(finished)
    assert await reader.get(record.id, owner) == finished
    assert await reader.delete(record.id, owner) is True
    assert await writer.get(record.id, owner) is None


async def test_concurrent_writers_on_two_replicas_all_land(open_stores: OpenStore, owner: str) -> None:
    replicas = [await open_stores(), await open_stores()]
    records = [make_record(owner) for _ in range(40)]
    events = [{"type": "response.output_text.delta", "delta": "x" * 100}] * 20
    await asyncio.gather(
        *(replicas[n % 2].save(record, events=events) for n, record in enumerate(records)),
        *(
            replicas[n % 2].save(make_record(owner, response_id=r.id, status="in_progress"))
            for n, r in enumerate(records[:10])
        ),
    )
    for replica in replicas:
        for record in records:
            loaded = await replica.get(record.id, owner)
            assert loaded is not None
            assert loaded.id == record.id
            assert await replica.events(record.id, owner) == events


@pytest.mark.postgres
async def test_the_store_recovers_when_the_server_drops_its_connections(
    postgres_session_url: str, owner: str
) -> None:
    async def drop_connections() -> None:
        admin = await asyncpg.connect(postgres_session_url.replace("+asyncpg", ""))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()

    store = await open_store(postgres_session_url)
    try:
        first = make_record(owner)
        await store.save(first)
        # Several pooled connections, all of which the server then closes (as on a restart).
        await asyncio.gather(*(walk(store, first.id, owner) for _ in range(5)))
        await drop_connections()
        assert await store.get(first.id, owner) == first
        assert await walked_items(store, first.id, owner) == chain_items([first])
        await drop_connections()
        second = make_record(owner, previous=first.id)
        await store.save(second, events=[{"type": "response.completed"}])
        assert await walked_items(store, second.id, owner) == chain_items([first, second])
        await drop_connections()
        assert await store.delete(second.id, owner) is True
    finally:
        await store.aclose()
