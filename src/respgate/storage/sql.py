"""The response store on SQLAlchemy (async): SQLite through aiosqlite, PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import bindparam, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from respgate.config import ConfigError
from respgate.protocol.errors import ServerError
from respgate.storage.base import History, StoredResponse
from respgate.storage.conversations import SqlConversationStore
from respgate.storage.group_commit import GroupCommit, Write
from respgate.storage.jobs import SqlJobStore
from respgate.storage.migrate import upgrade_to_head
from respgate.storage.queries import (
    RESPONSE_COLUMNS,
    DriverQuery,
    history_from_rows,
    history_query,
    purge_statement,
    record_from_row,
)
from respgate.storage.tables import response_events, responses

# Plain scheme (or sync driver) -> the async driver this store runs on.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

_T = TypeVar("_T")

# How much a large value is serialised between two turns of the event loop.
_LARGE_VALUE_BYTES = 4 * 1024 * 1024

# One retry after a lost connection: enough to ride out a database restart or failover.
_ATTEMPTS = (1, 2)

# Driver errors (raised on the read path, which bypasses SQLAlchemy) that mean the connection is gone.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    OSError,
)


def async_database_url(url: str) -> URL:
    """`url` with its driver set to the async one this store uses; ConfigError if unsupported."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url is not a database URL: {exc}") from exc
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"database_url scheme {parsed.drivername!r} is not supported; "
            "use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
        )
    return parsed.set(drivername=driver)


def create_store_engine(
    url: str, *, sqlite_busy_timeout_ms: int = 10_000, pool_size: int = 10, pool_timeout: float = 10.0
) -> AsyncEngine:
    """An engine for `url`, with SQLite set up for several concurrent writers (and processes).

    The pool holds `pool_size` connections and opens no more: SQLAlchemy closes a connection opened
    past the pool as soon as it is returned, so under load each request would pay for a new one (a
    forked backend on PostgreSQL, a thread and the pragmas on SQLite). A checkout waits at most
    `pool_timeout` seconds.
    """
    parsed = async_database_url(url)
    pool = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout}
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping (a round trip on every checkout): a connection found dead is retried instead.
        return create_async_engine(parsed, hide_parameters=True, **pool)
    # The default reset-on-return is an unconditional ROLLBACK, a thread hop through aiosqlite even
    # after a plain SELECT; the reset hook below rolls back only a transaction that is still open.
    # No SQL parameters in logs or error messages: they are what clients sent (aiosqlite logs every
    # statement with its parameters at DEBUG).
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger("aiosqlite").level))
    engine = create_async_engine(parsed, pool_reset_on_return=None, hide_parameters=True, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # The busy timeout comes first so that switching to WAL also waits for other processes.
        cursor.execute(f"PRAGMA busy_timeout = {int(sqlite_busy_timeout_ms)}")
        # WAL lets readers run while one writer commits; NORMAL sync is durable across process
        # crashes in WAL mode and only risks the last commits on power loss.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Off by default in SQLite; needed for ON DELETE CASCADE of the events.
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _rollback_open_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    return engine


async def open_store(
    url: str, *, max_chain_length: int = 10_000, pool_size: int = 10, pool_timeout: float = 10.0
) -> SqlResponseStore:
    """Connect to `url`, migrate the schema to head, and return a store that owns the engine.

    `max_chain_length` bounds `history`: a longer chain counts as larger than any budget. The pool
    settings are `create_store_engine`'s.
    """
    engine = create_store_engine(url, pool_size=pool_size, pool_timeout=pool_timeout)
    try:
        store = SqlResponseStore(engine, max_chain_length=max_chain_length)
        async with _database_errors("open"):
            await upgrade_to_head(engine)
    except BaseException:
        await engine.dispose()
        raise
    return store


class SqlResponseStore:
    """`ResponseStore` over one SQLAlchemy async engine (closing the store disposes of it).

    Its `conversations` is the `ConversationStore` on the same engine, sharing the queue of writers, and
    its `jobs` the `JobStore` of background work.

    Statements are built with SQLAlchemy Core, compiled once for the dialect, and run on the pooled
    connection's driver: through SQLAlchemy's execution layer a short write cost several times its
    SQL (statement construction, compile-cache lookups, and aiosqlite thread hops for cursor,
    execute, fetch, close and rollback).
    """

    def __init__(self, engine: AsyncEngine, *, max_chain_length: int = 10_000) -> None:
        if max_chain_length < 1:
            raise ValueError("max_chain_length must be at least 1")
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._max_links = max_chain_length
        self._insert: Callable[..., Any] = postgresql.insert if self._postgres else sqlite.insert
        # SQLite has one write lock per file, and a writer that finds it taken sleeps in growing steps
        # (up to 100 ms) before retrying. Queueing this process's writers here hands the lock over
        # as soon as a commit ends; the busy timeout then only arbitrates between processes.
        self._write_lock: AbstractAsyncContextManager[Any] = nullcontext() if self._postgres else asyncio.Lock()
        self._group = None if self._postgres else GroupCommit(self._commit_batch)
        self._backlog = 0
        by_id = (responses.c.id == bindparam("response_id"), responses.c.owner == bindparam("owner"))
        self._get_sql = DriverQuery(engine, select(*RESPONSE_COLUMNS).where(*by_id))
        self._events_sql = DriverQuery(
            engine,
            select(response_events.c.events)
            .join(responses, responses.c.id == response_events.c.response_id)
            .where(*by_id),
        )
        self._history_sql = DriverQuery(engine, history_query(postgres=self._postgres, max_links=max_chain_length))
        self._purge_sql = DriverQuery(engine, purge_statement(postgres=self._postgres))
        self.conversations = SqlConversationStore(read=self._read, write=self._write)
        self.jobs = SqlJobStore(read=self._read, write=self._write, dialect=engine.dialect.name)
        self._upsert_sql = DriverQuery(engine, self._upsert_statement())
        self._events_upsert_sql = DriverQuery(engine, self._events_upsert_statement())
        self._delete_sql = DriverQuery(engine, responses.delete().where(*by_id))

    def _upsert_statement(self) -> Any:
        columns = [column.name for column in RESPONSE_COLUMNS] + ["size"]
        upsert = self._insert(responses).values({name: bindparam(name) for name in columns})
        return upsert.on_conflict_do_update(
            index_elements=[responses.c.id],
            set_={name: upsert.excluded[name] for name in columns if name not in ("id", "owner")},
            # A response id never changes hands: an upsert from another owner updates nothing.
            where=responses.c.owner == upsert.excluded.owner,
        )

    def _events_upsert_statement(self) -> Any:
        upsert = self._insert(response_events).values(
            response_id=bindparam("response_id"), events=bindparam("events")
        )
        return upsert.on_conflict_do_update(
            index_elements=[response_events.c.response_id], set_={"events": upsert.excluded.events}
        )

    async def save(self, record: StoredResponse, events: list[dict[str, Any]] | None = None) -> None:
        """Insert or replace a response (and, if given, its streamed events) in one transaction."""
        input_items, input_bytes = await _dumps_list(record.input_items)
        values = {
            "id": record.id,
            "owner": record.owner,
            "created_at": record.created_at,
            "status": record.status,
            "previous_response_id": record.previous_response_id,
            "response": _dumps(record.response),
            "input_items": input_items,
            "size": input_bytes + len(orjson.dumps(record.response.get("output") or [])),
        }
        statements = [(self._upsert_sql, self._upsert_sql.arguments(values))]
        if events is not None:
            blob = {"response_id": record.id, "events": _dumps(events)}
            statements.append((self._events_upsert_sql, self._events_upsert_sql.arguments(blob)))
        await self._execute(
            "save", statements, conflict=f"Response id {record.id!r} already belongs to another owner."
        )

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        rows = await self._fetch(self._get_sql, response_id=response_id, owner=owner)
        return record_from_row(rows[0]) if rows else None

    async def history(self, response_id: str, owner: str, *, budget: int, truncate: bool) -> History | None:
        """The items of `response_id` and its ancestors, oldest first, within `budget`; None if unknown.

        The walk stops at the first ancestor that is missing (deleted, purged, or another owner's): it is
        the history's `gap`.
        """
        rows: list[Any] = list(
            await self._fetch(
                self._history_sql,
                response_id=response_id,
                owner=owner,
                budget=budget,
                whole_budget=budget if not truncate else _UNBOUNDED,
                whole_links=self._max_links if not truncate else self._max_links + 1,
            )
        )
        return history_from_rows(rows, max_links=self._max_links) if rows else None

    async def events(self, response_id: str, owner: str) -> list[dict[str, Any]] | None:
        """The stored events in order; None if the response is unknown or was saved without events."""
        rows = await self._fetch(self._events_sql, response_id=response_id, owner=owner)
        if not rows:
            return None
        events: list[dict[str, Any]] = orjson.loads(rows[0][0])
        return events

    async def delete(self, response_id: str, owner: str) -> bool:
        """Delete a response and (by cascade) its events; False if there was none for this owner."""
        arguments = self._delete_sql.arguments({"response_id": response_id, "owner": owner})
        counts = await self._execute("delete", [(self._delete_sql, arguments)])
        return bool(counts[0])

    async def purge(self, *, before: int, limit: int) -> int:
        """Delete up to `limit` of the oldest finished responses created before `before`; how many."""
        arguments = self._purge_sql.arguments({"before": before, "limit": limit})
        counts = await self._execute("purge", [(self._purge_sql, arguments)])
        return counts[0]

    def backlog(self) -> int:
        """Store operations in progress in this process: waiting for a connection or a commit, or running."""
        return self._backlog

    async def aclose(self) -> None:
        if self._group is not None:
            await self._group.aclose()
        await self._engine.dispose()

    async def _execute(
        self, operation: str, statements: list[tuple[DriverQuery, list[Any]]], *, conflict: str | None = None
    ) -> list[int]:
        """Run `statements` in one transaction on the driver; the row count of each.

        With `conflict`, a first statement that touches no row aborts the write with that message.
        On SQLite, concurrent writes share transactions (group commit). On PostgreSQL each write has
        its own; both writes are idempotent (an upsert, a delete), so one that met a connection the
        server had closed is run again on a fresh pool.
        """
        plain = [(query.sql, args) for query, args in statements]
        if self._group is not None:
            async with self._operation(operation):
                return await self._group.submit(Write(plain, conflict))

        async def run(driver: Any) -> list[int]:
            counts: list[int] = []
            async with driver.transaction():
                for sql, args in plain:
                    tag = await driver.execute(sql, *args)
                    counts.append(int(tag.rsplit(" ", 1)[-1]))
                    if conflict is not None and counts == [0]:
                        raise ServerError(conflict, code="response_id_conflict")
            return counts

        return await self._on_driver(operation, run)

    async def _commit_batch(self, batch: list[Write]) -> None:
        """One SQLite transaction for `batch`; a write whose first statement conflicts is skipped."""
        results: list[tuple[Write, list[int] | BaseException]] = []
        async with self._write_lock, self._engine.connect() as connection:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            try:
                for write in batch:
                    counts: list[int] = []
                    for sql, args in write.statements:
                        cursor = await driver.execute(sql, args)
                        counts.append(cursor.rowcount)
                        if write.conflict is not None and counts == [0]:
                            break
                    if write.conflict is not None and counts == [0]:
                        results.append((write, ServerError(write.conflict, code="response_id_conflict")))
                    else:
                        results.append((write, counts))
                await driver.commit()
            except BaseException as exc:
                await connection.invalidate(exc if isinstance(exc, Exception) else None)
                raise
        for write, outcome in results:
            if write.done.done():
                continue
            if isinstance(outcome, BaseException):
                write.done.set_exception(outcome)
            else:
                write.done.set_result(outcome)

    async def _write(self, operation: str, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run `work` in a transaction through SQLAlchemy, queued with this store's other writers.

        For the conversation store, whose writes are a few dependent statements and not hot. A write that
        met a connection the server had closed is run again; conversation writes are keyed by item ids,
        so a repeat cannot append the same item twice.
        """
        async with self._write_lock:
            return await self._retrying(operation, self._engine.begin, work)

    async def _read(self, operation: str, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run `work` on a pooled connection through SQLAlchemy (the conversation store's reads)."""
        return await self._retrying(operation, self._engine.connect, work)

    async def _retrying(
        self,
        operation: str,
        open_connection: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        work: Callable[[AsyncConnection], Awaitable[_T]],
    ) -> _T:
        async with self._operation(operation):
            for attempt in _ATTEMPTS:
                try:
                    async with open_connection() as connection:
                        return await work(connection)
                except DBAPIError as exc:
                    if not exc.connection_invalidated or attempt == _ATTEMPTS[-1]:
                        raise
        raise AssertionError("unreachable")

    async def _fetch(self, query: DriverQuery, **params: Any) -> Sequence[Sequence[Any]]:
        args = query.arguments(params)

        async def run(driver: Any) -> Sequence[Sequence[Any]]:
            if self._postgres:
                rows: Sequence[Sequence[Any]] = await driver.fetch(query.sql, *args)
                return rows
            rows = await driver.execute_fetchall(query.sql, args)
            return rows

        return await self._on_driver("read", run)

    async def _on_driver(self, operation: str, work: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run `work` on a pooled connection's driver; once more on a fresh pool if the server had closed it.

        Only reads and idempotent writes (an upsert, a delete) come through here, so a repeat is safe.
        """
        async with self._operation(operation):
            for attempt in _ATTEMPTS:
                async with self._engine.connect() as connection:
                    driver: Any = (await connection.get_raw_connection()).driver_connection
                    try:
                        return await work(driver)
                    except BaseException as exc:
                        # SQLAlchemy does not see errors raised by the driver directly: after one
                        # (or a cancellation mid-query) the connection must not go back to the pool.
                        await connection.invalidate(exc if isinstance(exc, Exception) else None)
                        if not isinstance(exc, _CONNECTION_LOST) or attempt == _ATTEMPTS[-1]:
                            raise
                # The server closed this connection, so it most likely closed its pooled siblings
                # too (a restart, a failover): start a fresh pool, then try again.
                await self._engine.dispose()
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _operation(self, operation: str) -> AsyncIterator[None]:
        """One store operation, counted in `backlog` until it ends; driver errors become a ServerError."""
        self._backlog += 1
        try:
            async with _database_errors(operation):
                yield
        finally:
            self._backlog -= 1


# A whole-history budget no history reaches (the size columns are 64-bit).
_UNBOUNDED = 2**62


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _dumps_list(items: list[Any]) -> tuple[str, int]:
    """`items` as a JSON array, and its size in bytes.

    A large input is serialised an item at a time, giving the event loop a turn every few megabytes:
    serialising 30 MB in one call would hold every other request up for tens of milliseconds. The
    pieces are joined once, into the one string the driver is given (each copy of a large value costs
    its page faults too).
    """
    parts: list[str] = ["["]
    size = 2
    pending = 0
    for index, item in enumerate(items):
        if index:
            parts.append(",")
            size += 1
        encoded = orjson.dumps(item)
        size += len(encoded)
        pending += len(encoded)
        parts.append(encoded.decode())
        if pending > _LARGE_VALUE_BYTES:
            pending = 0
            await asyncio.sleep(0)
    parts.append("]")
    return "".join(parts), size


@asynccontextmanager
async def _database_errors(operation: str) -> AsyncIterator[None]:
    # Driver and connection failures reach the client as a plain server error; the cause stays
    # chained for the log.
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise ServerError(f"The response store failed to {operation}.", code="store_error") from exc
