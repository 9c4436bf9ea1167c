"""The conversation store on SQLAlchemy Core, sharing the response store's engine and its write queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from respgate.protocol.errors import InvalidRequest
from respgate.storage.base import History, ItemPage, StoredConversation
from respgate.storage.tables import conversation_items, conversations

_T = TypeVar("_T")

_CONVERSATION_COLUMNS = (
    conversations.c.id,
    conversations.c.owner,
    conversations.c.created_at,
    conversations.c["metadata"],
)


class Runner(Protocol):
    """Runs `work` on a connection (a transaction, for writes), retrying once on a lost connection.

    Database failures come out as `ServerError`; errors raised by `work` itself pass through.
    """

    def __call__(self, operation: str, work: Callable[[AsyncConnection], Awaitable[_T]]) -> Awaitable[_T]: ...


class SqlConversationStore:
    """`ConversationStore` on the engine of a `SqlResponseStore` (which builds it and runs its statements)."""

    def __init__(self, *, read: Runner, write: Runner) -> None:
        self._read = read
        self._write = write

    async def create_conversation(self, conversation: StoredConversation, items: list[dict[str, Any]]) -> None:
        """Insert a conversation with its first items, in one transaction."""
        _check_unique(items)

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(
                insert(conversations).values(
                    id=conversation.id,
                    owner=conversation.owner,
                    created_at=conversation.created_at,
                    metadata=_dumps(conversation.metadata),
                    next_position=len(items),
                )
            )
            if items:
                await connection.execute(insert(conversation_items), _rows(conversation.id, 0, items))

        await self._write("create a conversation", write)

    async def get_conversation(self, conversation_id: str, owner: str) -> StoredConversation | None:
        statement = select(*_CONVERSATION_COLUMNS).where(*_owned(conversation_id, owner))

        async def read(connection: AsyncConnection) -> StoredConversation | None:
            row = (await connection.execute(statement)).first()
            return _conversation(row) if row is not None else None

        return await self._read("read a conversation", read)

    async def update_conversation(
        self, conversation_id: str, owner: str, metadata: dict[str, str]
    ) -> StoredConversation | None:
        """Replace the metadata; None if there is no such conversation."""
        statement = (
            update(conversations)
            .where(*_owned(conversation_id, owner))
            .values(metadata=_dumps(metadata))
            .returning(*_CONVERSATION_COLUMNS)
        )

        async def write(connection: AsyncConnection) -> StoredConversation | None:
            row = (await connection.execute(statement)).first()
            return _conversation(row) if row is not None else None

        return await self._write("update a conversation", write)

    async def delete_conversation(self, conversation_id: str, owner: str) -> bool:
        """Delete a conversation and its items; False if there was none."""

        async def write(connection: AsyncConnection) -> bool:
            deleted = await connection.execute(conversations.delete().where(*_owned(conversation_id, owner)))
            if not deleted.rowcount:
                return False
            # The foreign key cascades too; deleting explicitly does not depend on SQLite's pragma.
            await connection.execute(
                conversation_items.delete().where(conversation_items.c.conversation_id == conversation_id)
            )
            return True

        return await self._write("delete a conversation", write)

    async def add_items(
        self, conversation_id: str, owner: str, items: list[dict[str, Any]], *, skip_existing: bool = False
    ) -> list[dict[str, Any]] | None:
        """Append `items` after the last item, atomically; the items added, or None if no such conversation."""
        _check_unique(items)
        reserve = (
            update(conversations)
            .where(*_owned(conversation_id, owner))
            .values(next_position=conversations.c.next_position + len(items))
            .returning(conversations.c.next_position)
        )

        async def write(connection: AsyncConnection) -> list[dict[str, Any]] | None:
            # The positions are reserved by the transaction's first statement: it locks the conversation
            # (its row on PostgreSQL, the database on SQLite) until commit, so a concurrent append waits
            # here and the duplicate check below sees everything appended before it.
            end = (await connection.execute(reserve)).scalar_one_or_none()
            if end is None:
                return None
            start = end - len(items)
            taken = await _taken_ids(connection, conversation_id, [item["id"] for item in items])
            rows = _rows(conversation_id, start, items)
            if taken and not skip_existing:
                duplicate = next(item["id"] for item in items if item["id"] in taken)
                raise InvalidRequest(f"Duplicate item found with id {duplicate}.", param="items")
            rows = [row for row in rows if row["item_id"] not in taken]
            if rows:
                await connection.execute(insert(conversation_items), rows)
            return [item for item in items if item["id"] not in taken]

        return await self._write("add conversation items", write)

    async def history(self, conversation_id: str, owner: str, *, budget: int, truncate: bool) -> History | None:
        """The items, oldest first, within `budget`; None if no such conversation."""
        mine = conversation_items.c.conversation_id == conversation_id
        position, size = conversation_items.c.position, conversation_items.c.size
        # From the newest item back, the bytes of it and every later item.
        running = func.sum(size).over(order_by=position.desc(), rows=(None, 0)).label("running")
        suffixes = select(position, running).where(mine).subquery()

        async def read(connection: AsyncConnection) -> History | None:
            if not await _exists(connection, conversation_id, owner):
                return None
            measured = select(func.coalesce(func.sum(size), 0), func.max(position)).where(mine)
            total_sum, last = (await connection.execute(measured)).one()
            total = int(total_sum)  # PostgreSQL sums bigints as numeric
            first: int | None = None
            if total <= budget:
                first = 0
            elif truncate:
                first = (
                    await connection.execute(
                        select(func.min(suffixes.c.position)).where(suffixes.c.running <= budget)
                    )
                ).scalar_one_or_none()
            items: list[dict[str, Any]] = []
            loaded = 0
            if first is not None and last is not None:
                # Up to the last item counted: one appended meanwhile was not measured.
                # Streamed, so that only a few rows' text is held beside the decoded items.
                rows = await connection.stream(
                    select(size, conversation_items.c.item)
                    .where(mine, position >= first, position <= last)
                    .order_by(position)
                )
                async for item_size, item in rows:
                    loaded += item_size
                    items.append(orjson.loads(item))
            return History(items=items, size=total, loaded=loaded, truncated=loaded < total)

        return await self._read("read conversation items", read)

    async def list_items(
        self, conversation_id: str, owner: str, *, after: str | None, limit: int, order: Literal["asc", "desc"]
    ) -> ItemPage | None:
        """Up to `limit` items after the item `after` (in `order`); None if no such conversation."""
        position = conversation_items.c.position
        query = select(conversation_items.c.item).where(conversation_items.c.conversation_id == conversation_id)
        query = query.order_by(position.asc() if order == "asc" else position.desc()).limit(limit + 1)

        async def read(connection: AsyncConnection) -> ItemPage | None:
            if not await _exists(connection, conversation_id, owner):
                return None
            page = query
            if after is not None:
                cursor = (
                    await connection.execute(
                        select(position).where(
                            conversation_items.c.conversation_id == conversation_id,
                            conversation_items.c.item_id == after,
                        )
                    )
                ).scalar_one_or_none()
                if cursor is None:
                    raise InvalidRequest(f"Item with id '{after}' not found.", param="after")
                page = query.where(position > cursor if order == "asc" else position < cursor)
            found = [orjson.loads(item) for item in (await connection.execute(page)).scalars()]
            return ItemPage(items=found[:limit], has_more=len(found) > limit)

        return await self._read("list conversation items", read)

    async def get_item(self, conversation_id: str, owner: str, item_id: str) -> dict[str, Any] | None:
        statement = (
            select(conversation_items.c.item)
            .join(conversations, conversations.c.id == conversation_items.c.conversation_id)
            .where(*_owned(conversation_id, owner), conversation_items.c.item_id == item_id)
        )

        async def read(connection: AsyncConnection) -> dict[str, Any] | None:
            item = (await connection.execute(statement)).scalar_one_or_none()
            return orjson.loads(item) if item is not None else None

        return await self._read("read a conversation item", read)

    async def delete_item(self, conversation_id: str, owner: str, item_id: str) -> bool:
        """Remove one item; False if the conversation or the item is unknown."""
        owned = select(conversations.c.id).where(*_owned(conversation_id, owner)).scalar_subquery()
        statement = conversation_items.delete().where(
            conversation_items.c.conversation_id == owned, conversation_items.c.item_id == item_id
        )

        async def write(connection: AsyncConnection) -> bool:
            return bool((await connection.execute(statement)).rowcount)

        return await self._write("delete a conversation item", write)


def _owned(conversation_id: str, owner: str) -> tuple[Any, Any]:
    return conversations.c.id == conversation_id, conversations.c.owner == owner


async def _exists(connection: AsyncConnection, conversation_id: str, owner: str) -> bool:
    found = await connection.execute(select(conversations.c.id).where(*_owned(conversation_id, owner)))
    return found.first() is not None


async def _taken_ids(connection: AsyncConnection, conversation_id: str, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    result = await connection.execute(
        select(conversation_items.c.item_id).where(
            conversation_items.c.conversation_id == conversation_id, conversation_items.c.item_id.in_(ids)
        )
    )
    return set(result.scalars())


def _check_unique(items: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise InvalidRequest(f"Duplicate item found with id {item['id']}.", param="items")
        seen.add(item["id"])


def _rows(conversation_id: str, start: int, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for offset, item in enumerate(items):
        encoded = orjson.dumps(item)
        rows.append(
            {
                "conversation_id": conversation_id,
                "position": start + offset,
                "item_id": item["id"],
                "size": len(encoded),
                "item": encoded.decode(),
            }
        )
    return rows


def _conversation(row: Sequence[Any]) -> StoredConversation:
    # Positions follow _CONVERSATION_COLUMNS.
    return StoredConversation(id=row[0], owner=row[1], created_at=row[2], metadata=orjson.loads(row[3]))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
