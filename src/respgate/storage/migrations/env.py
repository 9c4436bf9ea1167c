"""Alembic environment for the response store.

The store runs this programmatically (see `respgate.storage.migrate`): it opens a connection, takes the
database-wide migration lock, and hands the connection over in `config.attributes["connection"]`.
Alembic's own command line works too, given `-x url=<database url>` or `sqlalchemy.url` in an ini file.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from respgate.storage.tables import metadata

VERSION_TABLE = "respgate_alembic_version"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass -x url=<database url> or set sqlalchemy.url")
    asyncio.run(_run_from_url(url))


_main()
