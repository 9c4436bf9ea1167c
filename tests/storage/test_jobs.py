"""Background job leases, on SQLite and on PostgreSQL: claiming, renewing, releasing, cancelling.

Each test gets a database of its own (claims take any claimable job, so tests must not share jobs).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest_asyncio
from alembic import command
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from respgate.storage.base import BackgroundJob, StoredResponse
from respgate.storage.migrate import alembic_config
from respgate.storage.sql import SqlResponseStore, open_store

OpenStore = Callable[[], Awaitable[SqlResponseStore]]
LEASE = 30.0


@pytest_asyncio.fixture
async def replicas(fresh_database_url: str) -> AsyncIterator[OpenStore]:
    """`await replicas()` -> another store on the test's own database, as another process would open it."""
    opened: list[SqlResponseStore] = []

    async def another() -> SqlResponseStore:
        store = await open_store(fresh_database_url)
        opened.append(store)
        return store

    yield another
    for store in opened:
        await store.aclose()


def job(created_at: int = 1_000, **fields: object) -> BackgroundJob:
    response_id = f"resp_{secrets.token_hex(8)}"
    return BackgroundJob(
        response_id=response_id,
        owner="owner-a",
        created_at=created_at,
        request={"model": "m", "input": [{"id": "msg_1", "type": "message", "role": "user", "content": []}]},
        **fields,  # type: ignore[arg-type]
    )


async def add_waiting(store: SqlResponseStore, waiting: BackgroundJob) -> None:
    """A job nobody holds, as a process at its concurrency cap leaves one once its response is stored."""
    await store.jobs.add(waiting, holder="submitter", lease_seconds=LEASE)
    await store.jobs.release("submitter", [waiting.response_id], refund=True)


async def until(probe: Callable[[], Awaitable[object]], *, attempts: int = 400) -> object:
    """Poll `probe` until it returns something truthy (bounded by a count of short sleeps)."""
    for _ in range(attempts):
        if value := await probe():
            return value
        await asyncio.sleep(0.025)
    raise AssertionError("the condition never held")


async def test_a_waiting_job_is_claimed_once_with_its_request(replicas: OpenStore) -> None:
    first, second = await replicas(), await replicas()
    waiting = job()
    await add_waiting(first, waiting)
    claimed = await second.jobs.claim("second", limit=5, lease_seconds=LEASE)
    assert claimed == [replace(waiting, attempts=1)]
    assert await first.jobs.claim("first", limit=5, lease_seconds=LEASE) == []


async def test_a_held_job_is_claimable_only_after_its_lease_runs_out(replicas: OpenStore) -> None:
    first, second = await replicas(), await replicas()
    held, short = job(), job()
    await first.jobs.add(held, holder="first", lease_seconds=LEASE)
    await first.jobs.add(short, holder="first", lease_seconds=0.2)

    async def claim() -> list[BackgroundJob]:
        return await second.jobs.claim("second", limit=5, lease_seconds=LEASE)

    taken = await until(claim)
    # The first attempt was the holder's own; the claim is the second.
    assert taken == [replace(short, attempts=2)]
    # The old holder can no longer renew what it lost; the live lease renews.
    assert await first.jobs.renew("first", [held.response_id, short.response_id], lease_seconds=LEASE) == {
        held.response_id: False
    }


async def test_claims_take_the_oldest_first_and_at_most_the_limit(replicas: OpenStore) -> None:
    store = await replicas()
    queued = [job(created_at=1_000 + offset) for offset in (3, 1, 2)]
    for each in queued:
        await add_waiting(store, each)
    first = await store.jobs.claim("me", limit=2, lease_seconds=LEASE)
    assert [each.created_at for each in first] == [1_001, 1_002]
    assert [each.created_at for each in await store.jobs.claim("me", limit=2, lease_seconds=LEASE)] == [1_003]


async def test_concurrent_claimers_never_share_a_job(replicas: OpenStore) -> None:
    stores = [await replicas() for _ in range(3)]
    queued = [job(created_at=1_000 + offset) for offset in range(30)]
    for each in queued:
        await add_waiting(stores[0], each)

    async def drain(store: SqlResponseStore, name: str) -> list[str]:
        taken: list[str] = []
        while claimed := await store.jobs.claim(name, limit=4, lease_seconds=LEASE):
            taken += [each.response_id for each in claimed]
        return taken

    results = await asyncio.gather(*(drain(store, f"p{n}") for n, store in enumerate(stores)))
    every = [response_id for taken in results for response_id in taken]
    assert sorted(every) == sorted(each.response_id for each in queued)


async def test_release_makes_jobs_claimable_at_once_and_can_refund_the_attempt(replicas: OpenStore) -> None:
    first, second = await replicas(), await replicas()
    kept, failed = job(), job()
    await first.jobs.add(kept, holder="first", lease_seconds=LEASE)
    await first.jobs.add(failed, holder="first", lease_seconds=LEASE)
    await first.jobs.release("first", [kept.response_id], refund=True)
    await first.jobs.release("first", [failed.response_id], refund=False)
    # Another holder's release does nothing.
    await second.jobs.release("second", [kept.response_id], refund=True)
    claimed = {
        each.response_id: each.attempts for each in await second.jobs.claim("second", limit=5, lease_seconds=LEASE)
    }
    assert claimed == {kept.response_id: 1, failed.response_id: 2}


async def test_finish_deletes_only_what_the_holder_holds(replicas: OpenStore) -> None:
    store = await replicas()
    mine = job()
    await store.jobs.add(mine, holder="me", lease_seconds=LEASE)
    await store.jobs.finish("someone-else", mine.response_id)
    assert await store.jobs.renew("me", [mine.response_id], lease_seconds=LEASE) == {mine.response_id: False}
    await store.jobs.finish("me", mine.response_id)
    assert await store.jobs.renew("me", [mine.response_id], lease_seconds=LEASE) == {}
    assert await store.jobs.cancel(mine.response_id, "owner-a", holder="me", lease_seconds=LEASE) == "absent"


async def test_cancel_takes_a_job_nobody_runs_and_flags_a_running_one(replicas: OpenStore) -> None:
    first, second = await replicas(), await replicas()
    waiting, running = job(), job()
    await add_waiting(first, waiting)
    await first.jobs.add(running, holder="first", lease_seconds=LEASE)
    # Another owner's cancel finds nothing.
    assert (
        await second.jobs.cancel(running.response_id, "owner-b", holder="second", lease_seconds=LEASE) == "absent"
    )
    assert (
        await second.jobs.cancel(waiting.response_id, "owner-a", holder="second", lease_seconds=LEASE) == "taken"
    )
    assert (
        await second.jobs.cancel(running.response_id, "owner-a", holder="second", lease_seconds=LEASE)
        == "requested"
    )
    # The taken job is the canceller's now; the running one tells its holder at the next renewal.
    assert await first.jobs.claim("first", limit=5, lease_seconds=LEASE) == []
    assert await second.jobs.renew("second", [waiting.response_id], lease_seconds=LEASE) == {
        waiting.response_id: True
    }
    assert await first.jobs.renew("first", [running.response_id], lease_seconds=LEASE) == {
        running.response_id: True
    }


async def test_responses_left_running_by_an_older_version_get_a_job_without_request(
    fresh_database_url: str,
) -> None:
    engine = create_async_engine(fresh_database_url)

    def upgrade_to(revision: str) -> Callable[[Connection], None]:
        return lambda connection: command.upgrade(alembic_config(connection), revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_to("0002"))
    finally:
        await engine.dispose()
    # A store on the 0002 schema would not open (it migrates); write the rows as the old version did.
    legacy = create_async_engine(fresh_database_url)
    try:
        async with legacy.begin() as connection:
            for response_id, status in (
                ("resp_stuck", "queued"),
                ("resp_running", "in_progress"),
                ("resp_done", "completed"),
            ):
                await connection.exec_driver_sql(
                    "INSERT INTO responses (id, owner, created_at, status, previous_response_id, response, input_items) "
                    f"VALUES ('{response_id}', 'owner-a', 7, '{status}', NULL, '{{}}', '[]')"
                )
    finally:
        await legacy.dispose()
    store = await open_store(fresh_database_url)
    try:
        claimed = await store.jobs.claim("me", limit=5, lease_seconds=LEASE)
        assert sorted((each.response_id, each.request, each.attempts) for each in claimed) == [
            ("resp_running", None, 1),
            ("resp_stuck", None, 1),
        ]
        assert await store.get("resp_stuck", "owner-a") == StoredResponse(
            id="resp_stuck",
            owner="owner-a",
            created_at=7,
            status="queued",
            previous_response_id=None,
            response={},
            input_items=[],
        )
    finally:
        await store.aclose()
