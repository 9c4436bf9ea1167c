"""Background jobs on SQLAlchemy Core, sharing the response store's engine and its write queue.

Leases are timed by the database's clock, so replicas whose clocks disagree still agree on when a lease
has run out. A claim takes its jobs in one statement: `FOR UPDATE SKIP LOCKED` on PostgreSQL (two
claimers pass over each other's rows instead of waiting), a plain `UPDATE … WHERE … IN (SELECT …)` on
SQLite, where the statement holds the database's single write lock from start to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, ColumnElement, case, delete, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from respgate.storage.base import BackgroundJob, CancelOutcome
from respgate.storage.conversations import Runner
from respgate.storage.tables import background_jobs as jobs

_NOW_MS = {
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
}

_COLUMNS = (
    jobs.c.response_id,
    jobs.c.owner,
    jobs.c.created_at,
    jobs.c.request,
    jobs.c.attempts,
    jobs.c.cancel_requested,
)


class SqlJobStore:
    """`JobStore` on the engine of a `SqlResponseStore` (which builds it and runs its statements)."""

    def __init__(self, *, read: Runner, write: Runner, dialect: str) -> None:
        self._read = read
        self._write = write
        self._now: ColumnElement[int] = literal_column(_NOW_MS[dialect], BigInteger)

    def _lease_end(self, lease_seconds: float) -> ColumnElement[int]:
        return self._now + int(lease_seconds * 1000)

    async def add(self, job: BackgroundJob, *, holder: str, lease_seconds: float) -> None:
        """Insert a job held by `holder`, counted as its first attempt."""
        statement = insert(jobs).values(
            response_id=job.response_id,
            owner=job.owner,
            created_at=job.created_at,
            request=None if job.request is None else orjson.dumps(job.request).decode(),
            attempts=job.attempts + 1,
            holder=holder,
            lease_expires_at=self._lease_end(lease_seconds),
            cancel_requested=job.cancel_requested,
        )

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._write("queue a background response", write)

    async def claim(self, holder: str, *, limit: int, lease_seconds: float) -> list[BackgroundJob]:
        """Take up to `limit` claimable jobs, oldest first, each with one more attempt counted."""
        claimable = jobs.c.lease_expires_at < self._now
        probe = select(jobs.c.response_id).where(claimable).limit(1)

        async def any_claimable(connection: AsyncConnection) -> bool:
            return (await connection.execute(probe)).first() is not None

        # A read first: most polls find nothing, and on SQLite a read does not take the write lock.
        if limit < 1 or not await self._read("look for background work", any_claimable):
            return []
        oldest = (
            select(jobs.c.response_id)
            .where(claimable)
            .order_by(jobs.c.created_at, jobs.c.response_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(jobs)
            .where(jobs.c.response_id.in_(oldest.scalar_subquery()), claimable)
            .values(holder=holder, lease_expires_at=self._lease_end(lease_seconds), attempts=jobs.c.attempts + 1)
            .returning(*_COLUMNS)
        )

        async def write(connection: AsyncConnection) -> list[BackgroundJob]:
            rows = (await connection.execute(statement)).all()
            return sorted((_job(row) for row in rows), key=lambda job: (job.created_at, job.response_id))

        return await self._write("claim background work", write)

    async def renew(self, holder: str, response_ids: list[str], *, lease_seconds: float) -> dict[str, bool]:
        """Extend the leases `holder` still has among `response_ids`: id -> whether a cancel was requested."""
        if not response_ids:
            return {}
        statement = (
            update(jobs)
            .where(jobs.c.holder == holder, jobs.c.response_id.in_(response_ids))
            .values(lease_expires_at=self._lease_end(lease_seconds))
            .returning(jobs.c.response_id, jobs.c.cancel_requested)
        )

        async def write(connection: AsyncConnection) -> dict[str, bool]:
            return {row[0]: bool(row[1]) for row in await connection.execute(statement)}

        return await self._write("renew background leases", write)

    async def release(self, holder: str, response_ids: list[str], *, refund: bool) -> None:
        """Let go of jobs so that any process may claim them at once; `refund` uncounts the attempt."""
        if not response_ids:
            return
        attempts: Any = case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0) if refund else jobs.c.attempts
        statement = (
            update(jobs)
            .where(jobs.c.holder == holder, jobs.c.response_id.in_(response_ids))
            .values(holder=None, lease_expires_at=0, attempts=attempts)
        )

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._write("release background work", write)

    async def finish(self, holder: str, response_id: str) -> None:
        """Delete a job `holder` holds: its response's final state is stored."""
        statement = delete(jobs).where(jobs.c.response_id == response_id, jobs.c.holder == holder)

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._write("finish background work", write)

    async def cancel(self, response_id: str, owner: str, *, holder: str, lease_seconds: float) -> CancelOutcome:
        """Take the job if nobody runs it (`taken`), else flag it for its holder (`requested`)."""
        owned = (jobs.c.response_id == response_id, jobs.c.owner == owner)
        take = (
            update(jobs)
            .where(*owned, jobs.c.lease_expires_at < self._now)
            .values(holder=holder, lease_expires_at=self._lease_end(lease_seconds), cancel_requested=True)
            .returning(jobs.c.response_id)
        )
        flag = update(jobs).where(*owned).values(cancel_requested=True).returning(jobs.c.response_id)

        async def write(connection: AsyncConnection) -> CancelOutcome:
            if (await connection.execute(take)).first() is not None:
                return "taken"
            return "requested" if (await connection.execute(flag)).first() is not None else "absent"

        return await self._write("cancel background work", write)


def _job(row: Sequence[Any]) -> BackgroundJob:
    # Positions follow _COLUMNS.
    return BackgroundJob(
        response_id=row[0],
        owner=row[1],
        created_at=row[2],
        request=None if row[3] is None else orjson.loads(row[3]),
        attempts=row[4],
        cancel_requested=bool(row[5]),
    )
