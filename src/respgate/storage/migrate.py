"""Bring a database to the head schema revision, safely when several processes start at once."""

from __future__ import annotations

import asyncio
import weakref

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SCRIPT_LOCATION = "respgate.storage:migrations"

# Any constant works as long as every respgate process uses the same one: it names the
# PostgreSQL advisory lock that serialises migrations across processes.
_PG_MIGRATION_LOCK_KEY = 0x7265_7370_6761_7465  # "respgate"

# Alembic keeps its running migration context in module globals; two upgrades interleaving on one
# event loop (stores for two databases opened concurrently) would mix their contexts up.
_in_process_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Run every pending migration; a no-op on a database already at head."""
    loop = asyncio.get_running_loop()
    in_process = _in_process_locks.setdefault(loop, asyncio.Lock())
    async with in_process, engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes most of a table's schema by rebuilding it, which drops the old table; with
            # foreign keys on, that drop first deletes, by cascade, every row referencing it. The pragma
            # only takes effect outside a transaction, so it is set before the migration begins.
            await connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        try:
            await _lock_database(connection)
            await connection.run_sync(_upgrade)
            await connection.commit()
        except BaseException:
            # Never hand a connection with foreign keys off back to the pool.
            await connection.invalidate()
            raise
        if sqlite:
            await connection.exec_driver_sql("PRAGMA foreign_keys = ON")


async def _lock_database(connection: AsyncConnection) -> None:
    # Taken before Alembic looks at the version table, so a second process waits here and then finds
    # the schema already at head. Both locks are released by the commit that ends the upgrade.
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # An immediate transaction takes SQLite's single write lock up front (waiting out the busy
        # timeout), and keeps the DDL inside one transaction, which the driver would not begin itself.
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
