"""The SQL conversation store, on SQLite and on PostgreSQL (the `backend` parameter)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from alembic import command
from sqlalchemy import insert

from respgate.protocol.errors import InvalidRequest
from respgate.storage.base import StoredConversation
from respgate.storage.migrate import alembic_config
from respgate.storage.sql import SqlResponseStore, create_store_engine, open_store
from respgate.storage.tables import responses

OpenStore = Callable[[], Awaitable[SqlResponseStore]]


def conversation(owner: str, **metadata: str) -> StoredConversation:
    return StoredConversation(
        id=f"conv_{secrets.token_hex(24)}", owner=owner, created_at=1_764_000_000, metadata=metadata
    )


def message(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id or f"msg_{secrets.token_hex(8)}",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
        "status": "completed",
    }


def texts(items: list[dict[str, Any]]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


async def all_items(store: SqlResponseStore, conversation_id: str, owner: str) -> list[dict[str, Any]] | None:
    history = await store.conversations.history(conversation_id, owner, budget=2**40, truncate=False)
    return None if history is None else history.items


async def test_a_conversation_is_created_with_its_items_and_read_back(store: SqlResponseStore, owner: str) -> None:
    created = conversation(owner, topic="weather", ünï="✓ 日本語")
    await store.conversations.create_conversation(created, [message("one"), message("two")])
    assert await store.conversations.get_conversation(created.id, owner) == created
    assert texts(await all_items(store, created.id, owner) or []) == ["one", "two"]


async def test_another_owner_sees_nothing_and_changes_nothing(store: SqlResponseStore, owner: str) -> None:
    conversations = store.conversations
    created = conversation(owner)
    item = message("mine")
    await conversations.create_conversation(created, [item])
    stranger = owner + "-other"
    assert await conversations.get_conversation(created.id, stranger) is None
    assert await all_items(store, created.id, stranger) is None
    assert await conversations.list_items(created.id, stranger, after=None, limit=20, order="asc") is None
    assert await conversations.get_item(created.id, stranger, item["id"]) is None
    assert await conversations.update_conversation(created.id, stranger, {"k": "v"}) is None
    assert await conversations.add_items(created.id, stranger, [message("theirs")]) is None
    assert await conversations.delete_item(created.id, stranger, item["id"]) is False
    assert await conversations.delete_conversation(created.id, stranger) is False
    assert await conversations.get_conversation(created.id, owner) == created
    assert await all_items(store, created.id, owner) == [item]


async def test_metadata_is_replaced(store: SqlResponseStore, owner: str) -> None:
    created = conversation(owner, a="1")
    await store.conversations.create_conversation(created, [])
    updated = await store.conversations.update_conversation(created.id, owner, {"b": "2"})
    assert updated is not None
    assert updated.metadata == {"b": "2"}
    assert (updated.id, updated.created_at) == (created.id, created.created_at)
    assert await store.conversations.get_conversation(created.id, owner) == updated
    assert await store.conversations.update_conversation("conv_unknown", owner, {}) is None


async def test_items_are_appended_in_order(store: SqlResponseStore, owner: str) -> None:
    created = conversation(owner)
    await store.conversations.create_conversation(created, [message("one")])
    added = await store.conversations.add_items(created.id, owner, [message("two"), message("three")])
    assert texts(added or []) == ["two", "three"]
    await store.conversations.add_items(created.id, owner, [message("four")])
    assert texts(await all_items(store, created.id, owner) or []) == ["one", "two", "three", "four"]
    assert await store.conversations.add_items("conv_unknown", owner, [message("x")]) is None


async def test_a_duplicate_id_fails_the_whole_append(store: SqlResponseStore, owner: str) -> None:
    first = message("one")
    created = conversation(owner)
    await store.conversations.create_conversation(created, [first])
    with pytest.raises(InvalidRequest) as caught:
        await store.conversations.add_items(
            created.id, owner, [message("two"), message("again", item_id=first["id"])]
        )
    assert caught.value.message == f"Duplicate item found with id {first['id']}."
    twice = message("twice")
    with pytest.raises(InvalidRequest):
        await store.conversations.add_items(created.id, owner, [twice, twice])
    with pytest.raises(InvalidRequest):
        await store.conversations.create_conversation(conversation(owner), [twice, twice])
    assert texts(await all_items(store, created.id, owner) or []) == ["one"]


async def test_skip_existing_leaves_out_the_items_already_held(store: SqlResponseStore, owner: str) -> None:
    first = message("one")
    created = conversation(owner)
    await store.conversations.create_conversation(created, [first])
    added = await store.conversations.add_items(created.id, owner, [first, message("two")], skip_existing=True)
    assert texts(added or []) == ["two"]
    assert texts(await all_items(store, created.id, owner) or []) == ["one", "two"]


async def test_paging_walks_every_item_in_either_order(store: SqlResponseStore, owner: str) -> None:
    created = conversation(owner)
    await store.conversations.create_conversation(created, [message(str(n)) for n in range(7)])
    orders: list[tuple[Literal["asc", "desc"], list[str]]] = [
        ("asc", [str(n) for n in range(7)]),
        ("desc", [str(n) for n in reversed(range(7))]),
    ]
    for order, expected in orders:
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            page = await store.conversations.list_items(created.id, owner, after=after, limit=3, order=order)
            assert page is not None
            seen += texts(page.items)
            pages += 1
            if not page.has_more:
                break
            after = page.items[-1]["id"]
        assert seen == expected
        assert pages == 3


async def test_an_unknown_cursor_is_refused(store: SqlResponseStore, owner: str) -> None:
    created = conversation(owner)
    await store.conversations.create_conversation(created, [message("one")])
    with pytest.raises(InvalidRequest) as caught:
        await store.conversations.list_items(created.id, owner, after="msg_nope", limit=20, order="desc")
    assert caught.value.param == "after"
    assert caught.value.message == "Item with id 'msg_nope' not found."


async def test_one_item_is_read_and_deleted(store: SqlResponseStore, owner: str) -> None:
    items = [message("one"), message("two"), message("three")]
    created = conversation(owner)
    await store.conversations.create_conversation(created, items)
    assert await store.conversations.get_item(created.id, owner, items[1]["id"]) == items[1]
    assert await store.conversations.delete_item(created.id, owner, items[1]["id"]) is True
    assert await store.conversations.delete_item(created.id, owner, items[1]["id"]) is False
    assert await store.conversations.get_item(created.id, owner, items[1]["id"]) is None
    # Positions are never reused: a cursor on either side of the gap still pages correctly.
    await store.conversations.add_items(created.id, owner, [message("four")])
    page = await store.conversations.list_items(created.id, owner, after=items[0]["id"], limit=20, order="asc")
    assert page is not None
    assert texts(page.items) == ["three", "four"]


async def test_deleting_a_conversation_deletes_its_items(store: SqlResponseStore, owner: str) -> None:
    item = message("one")
    created = conversation(owner)
    await store.conversations.create_conversation(created, [item])
    assert await store.conversations.delete_conversation(created.id, owner) is True
    assert await store.conversations.get_conversation(created.id, owner) is None
    assert await store.conversations.get_item(created.id, owner, item["id"]) is None
    assert await store.conversations.delete_conversation(created.id, owner) is False
    # The item id is free again: a new conversation may hold an item with it.
    again = conversation(owner)
    await store.conversations.create_conversation(again, [item])
    assert await all_items(store, again.id, owner) == [item]


async def test_concurrent_appends_from_two_stores_never_interleave(
    open_stores: OpenStore, store: SqlResponseStore, owner: str
) -> None:
    other = await open_stores()
    created = conversation(owner)
    await store.conversations.create_conversation(created, [])
    batches = 12
    batch_size = 4

    async def append(writer: SqlResponseStore, batch: int) -> None:
        items = [message(f"{batch}:{n}") for n in range(batch_size)]
        assert await writer.conversations.add_items(created.id, owner, items) == items

    await asyncio.gather(*(append(store if batch % 2 else other, batch) for batch in range(batches)))
    stored = texts(await all_items(store, created.id, owner) or [])
    assert len(stored) == batches * batch_size
    # Each append is one contiguous run, in its own order.
    runs = [stored[start : start + batch_size] for start in range(0, len(stored), batch_size)]
    for run in runs:
        batch = run[0].split(":")[0]
        assert run == [f"{batch}:{n}" for n in range(batch_size)]
    assert sorted(run[0].split(":")[0] for run in runs) == sorted(str(batch) for batch in range(batches))


async def test_a_database_at_the_first_revision_keeps_its_responses_when_upgraded(
    fresh_database_url: str, owner: str
) -> None:
    engine = create_store_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
            await connection.execute(
                insert(responses).values(
                    id="resp_kept",
                    owner=owner,
                    created_at=1,
                    status="completed",
                    previous_response_id=None,
                    response='{"id":"resp_kept"}',
                    input_items="[]",
                )
            )
            await connection.commit()
    finally:
        await engine.dispose()
    store = await open_store(fresh_database_url)
    try:
        kept = await store.get("resp_kept", owner)
        assert kept is not None and kept.response == {"id": "resp_kept"}
        created = conversation(owner)
        await store.conversations.create_conversation(created, [message("one")])
        assert texts(await all_items(store, created.id, owner) or []) == ["one"]
    finally:
        await store.aclose()
