"""Opening a store: URL handling, migrations (idempotent, safe under concurrent start-up), failures."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from respgate.config import ConfigError
from respgate.protocol.errors import ServerError
from respgate.storage.base import StoredResponse
from respgate.storage.migrate import alembic_config
from respgate.storage.sql import async_database_url, open_store
from respgate.storage.tables import metadata

# Each process says "ready" once imported, then opens the store when told "go", so the migrations of
# all of them start together rather than one import time apart.
OPEN_ON_SIGNAL = """
import asyncio, sys
from respgate.storage.sql import open_store

async def main() -> None:
    print("ready", flush=True)
    sys.stdin.readline()
    store = await open_store(sys.argv[1])
    await store.aclose()

asyncio.run(main())
"""


async def applied_revisions(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT version_num FROM respgate_alembic_version"))
            return [row[0] for row in result]
    finally:
        await engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def record(owner: str) -> StoredResponse:
    return StoredResponse(
        id="resp_kept",
        owner=owner,
        created_at=1,
        status="completed",
        previous_response_id=None,
        response={"id": "resp_kept"},
        input_items=[],
    )


async def test_opening_twice_migrates_once_and_keeps_the_data(fresh_database_url: str) -> None:
    first = await open_store(fresh_database_url)
    await first.save(record("o"))
    await first.aclose()
    second = await open_store(fresh_database_url)
    try:
        assert await second.get("resp_kept", "o") == record("o")
    finally:
        await second.aclose()
    assert await applied_revisions(fresh_database_url) == [head_revision()]


async def test_stores_opened_together_in_one_process_both_work(fresh_database_url: str) -> None:
    stores = await asyncio.gather(open_store(fresh_database_url), open_store(fresh_database_url))
    try:
        await stores[0].save(record("o"))
        assert await stores[1].get("resp_kept", "o") == record("o")
    finally:
        for store in stores:
            await store.aclose()
    assert await applied_revisions(fresh_database_url) == [head_revision()]


async def test_processes_starting_at_once_on_a_new_database_all_succeed(fresh_database_url: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPEN_ON_SIGNAL,
            fresh_database_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.readline() == b"ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    outcomes = [await process.communicate() for process in processes]
    assert [(process.returncode, err.decode()) for process, (_, err) in zip(processes, outcomes, strict=True)] == [
        (0, "")
    ] * 3
    assert await applied_revisions(fresh_database_url) == [head_revision()]


async def test_the_migrated_schema_matches_the_table_definitions(fresh_database_url: str) -> None:
    await (await open_store(fresh_database_url)).aclose()

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"version_table": "respgate_alembic_version"})
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(fresh_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:////var/lib/respgate/x.sqlite3", "sqlite+aiosqlite:////var/lib/respgate/x.sqlite3"),
        ("sqlite+aiosqlite:///relative.sqlite3", "sqlite+aiosqlite:///relative.sqlite3"),
        ("postgresql://u:p@db:5432/respgate", "postgresql+asyncpg://u:p@db:5432/respgate"),
        ("postgres://u@db/respgate", "postgresql+asyncpg://u@db/respgate"),
        ("postgresql+asyncpg://u@db/respgate", "postgresql+asyncpg://u@db/respgate"),
    ],
)
def test_plain_urls_are_mapped_to_the_async_drivers(given: str, expected: str) -> None:
    assert async_database_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://u@db/respgate", "postgresql+psycopg2://u@db/x", "not a url"])
def test_unsupported_urls_are_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        async_database_url(url)


async def test_plain_sqlite_url_opens(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'plain.sqlite3'}")
    try:
        await store.save(record("o"))
        assert await store.get("resp_kept", "o") == record("o")
    finally:
        await store.aclose()


async def test_an_unreachable_database_is_a_server_error(tmp_path: Path) -> None:
    with pytest.raises(ServerError):
        await open_store(f"sqlite+aiosqlite:///{tmp_path / 'missing-directory' / 'x.sqlite3'}")


async def test_an_unreachable_postgres_server_is_a_server_error() -> None:
    # Port 9 (discard) is closed on loopback: the connection is refused at once.
    with pytest.raises(ServerError):
        await open_store("postgresql://postgres@127.0.0.1:9/none")
