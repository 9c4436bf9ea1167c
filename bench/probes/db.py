"""A scratch database per probe (a SQLite file, or a fresh PostgreSQL database), read behind the server's back.

Reads are schema-agnostic where they can be: `text_bytes` sums the length of every text or binary
column of every table, so storage is measured the same way whatever tables a version of respgate has.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench.probes.registry import Backend

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class Database:
    def __init__(self, backend: Backend, url: str, *, path: Path | None = None, pg_dsn: str | None = None) -> None:
        self.backend = backend
        self.url = url  # what respgate's `database_url` gets
        self._path = path
        self._pg_dsn = pg_dsn

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self._path is not None:
            with closing(sqlite3.connect(self._path, timeout=30)) as conn:
                return [tuple(row) for row in conn.execute(sql, args).fetchall()]
        return asyncio.run(self._pg(sql, args, fetch=True))

    def execute(self, sql: str, *args: Any) -> None:
        if self._path is not None:
            with closing(sqlite3.connect(self._path, timeout=30)) as conn:
                conn.executescript(sql) if not args else conn.execute(sql, args)
                conn.commit()
            return
        asyncio.run(self._pg(sql, args, fetch=False))

    async def _pg(self, sql: str, args: Sequence[Any], *, fetch: bool) -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(self._pg_dsn, timeout=10)
        try:
            if fetch:
                return [tuple(row) for row in await conn.fetch(sql, *args)]
            await conn.execute(sql, *args)
            return []
        finally:
            await conn.close()

    def tables(self) -> list[str]:
        if self.backend == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        else:
            rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return sorted(str(row[0]) for row in rows if row[0] != "alembic_version")

    def text_columns(self, table: str) -> list[str]:
        if self.backend == "sqlite":
            rows = self.query(f'SELECT name, type FROM pragma_table_info("{table}")')
            return [
                str(name) for name, kind in rows if str(kind).upper() in ("TEXT", "BLOB", "VARCHAR", "JSON", "")
            ]
        rows = self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema='public' AND table_name=$1 "
            "AND data_type IN ('text', 'bytea', 'character varying', 'json', 'jsonb')",
            table,
        )
        return [str(row[0]) for row in rows]

    def text_bytes(self) -> dict[str, int]:
        """Per table, the bytes held in its text/binary columns (logical size, before any compression)."""
        sizes: dict[str, int] = {}
        for table in self.tables():
            columns = self.text_columns(table)
            if not columns:
                continue
            if self.backend == "sqlite":
                expr = " + ".join(f'COALESCE(SUM(LENGTH(CAST("{c}" AS BLOB))), 0)' for c in columns)
            else:
                expr = " + ".join(f'COALESCE(SUM(OCTET_LENGTH("{c}"::text)), 0)' for c in columns)
            sizes[table] = int(self.query(f'SELECT {expr} FROM "{table}"')[0][0])
        return sizes

    def indexes(self, table: str) -> list[str]:
        """Each index on `table` as 'name(col, …)'."""
        if self.backend == "sqlite":
            names = [str(row[1]) for row in self.query(f'SELECT * FROM pragma_index_list("{table}")')]
            out = []
            for name in names:
                cols = [str(row[2]) for row in self.query(f'SELECT * FROM pragma_index_info("{name}")')]
                out.append(f"{name}({', '.join(cols)})")
            return out
        rows = self.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1", table)
        return [f"{name}: {definition}" for name, definition in rows]

    def statuses(self, ids: Sequence[str]) -> dict[str, int]:
        """How many of `ids` the `responses` table holds in each status ('absent' for missing rows)."""
        found: dict[str, str] = {}
        chunk = 200
        for start in range(0, len(ids), chunk):
            part = list(ids[start : start + chunk])
            if self.backend == "sqlite":
                marks = ",".join("?" * len(part))
                rows = self.query(f"SELECT id, status FROM responses WHERE id IN ({marks})", *part)
            else:
                rows = self.query("SELECT id, status FROM responses WHERE id = ANY($1::text[])", part)
            found.update({str(i): str(s) for i, s in rows})
        counts: dict[str, int] = {}
        for rid in ids:
            status = found.get(rid, "absent")
            counts[status] = counts.get(status, 0) + 1
        return counts


@contextmanager
def scratch_database(backend: Backend, directory: Path) -> Iterator[Database]:
    """A new empty database, removed afterwards."""
    if backend == "sqlite":
        path = directory / f"probe-{secrets.token_hex(4)}.sqlite3"
        try:
            yield Database("sqlite", f"sqlite+aiosqlite:///{path}", path=path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"respgate_probe_{secrets.token_hex(4)}"
    admin = Database("postgres", "", pg_dsn=PG_ADMIN)
    admin.execute(f"CREATE DATABASE {name}")
    try:
        dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
        yield Database("postgres", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", pg_dsn=dsn)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_available() -> str | None:
    """None when the local PostgreSQL answers, else why not."""
    try:
        Database("postgres", "", pg_dsn=PG_ADMIN).query("SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}"
    return None
