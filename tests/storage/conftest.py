"""Fixtures for the store tests: every behavioural test runs on SQLite and on PostgreSQL.

- `database_url`: a migrated-on-first-open database for the `backend` parameter (from tests/conftest.py):
  a temporary SQLite file per test, or this session's PostgreSQL database `respgate_test_<random>`
  (created on first use, dropped at the end of the session). Tests on the shared PostgreSQL database
  stay apart by using their own owner and fresh response ids.
- `fresh_database_url`: a database nobody has migrated yet (a new file, or a new PostgreSQL database
  dropped after the test), for migration tests.
- `store`: a `SqlResponseStore` opened on `database_url`, closed after the test.

`RESPGATE_TEST_POSTGRES` overrides the server (default `postgresql://postgres@127.0.0.1:5432`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from respgate.storage.sql import SqlResponseStore, open_store

POSTGRES_SERVER = os.environ.get("RESPGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


class PostgresDatabases:
    """Creates uniquely named databases on the test server and drops them all at the end."""

    def __init__(self) -> None:
        self._created: list[str] = []

    async def create(self) -> str:
        name = f"respgate_test_{secrets.token_hex(6)}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return f"{POSTGRES_SERVER.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"

    async def drop_all(self) -> None:
        while self._created:
            await self._admin(f'DROP DATABASE IF EXISTS "{self._created.pop()}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        try:
            connection = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres")
        except OSError as exc:
            raise RuntimeError(
                f"PostgreSQL is not reachable at {POSTGRES_SERVER} (start it, or deselect with -m 'not postgres')"
            ) from exc
        try:
            await connection.execute(statement)
        finally:
            await connection.close()


@pytest_asyncio.fixture(scope="session")
async def postgres_databases() -> AsyncIterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    await databases.drop_all()


@pytest_asyncio.fixture(scope="session")
async def postgres_session_url(postgres_databases: PostgresDatabases) -> str:
    return await postgres_databases.create()


@pytest_asyncio.fixture
async def fresh_postgres_url(postgres_databases: PostgresDatabases) -> str:
    return await postgres_databases.create()


# The two URL fixtures are synchronous so that they can pull the PostgreSQL fixtures in only when the
# backend is PostgreSQL (an async fixture cannot request another one while the loop is running).
@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_session_url")
    return url


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest_asyncio.fixture
async def open_stores(database_url: str) -> AsyncIterator[Callable[[], Awaitable[SqlResponseStore]]]:
    """`await open_stores()` -> another store (replica) on the test's database, closed afterwards."""
    opened: list[SqlResponseStore] = []

    async def another() -> SqlResponseStore:
        store = await open_store(database_url)
        opened.append(store)
        return store

    yield another
    for store in opened:
        await store.aclose()


@pytest_asyncio.fixture
async def store(open_stores: Callable[[], Awaitable[SqlResponseStore]]) -> SqlResponseStore:
    return await open_stores()


@pytest.fixture
def owner() -> str:
    return f"owner-{secrets.token_hex(6)}"
