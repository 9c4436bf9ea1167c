"""Retention: responses older than `retention_days` are purged in batches; the purge's own query and the
periodic task a server runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support.harness import KEY_A, make_settings, scripted
from support.server import LiveServer

from respgate.http.auth import KeyChecker
from respgate.storage.base import StoredResponse
from respgate.storage.queries import DriverQuery, purge_statement
from respgate.storage.retention import DAY, Retention
from respgate.storage.sql import SqlResponseStore, open_store

NOW = 1_800_000_000


def record(owner: str, *, age_days: float, status: str = "completed") -> StoredResponse:
    response_id = f"resp_{secrets.token_hex(24)}"
    return StoredResponse(
        id=response_id,
        owner=owner,
        created_at=int(NOW - age_days * DAY),
        status=status,
        previous_response_id=None,
        response={"id": response_id, "status": status, "output": []},
        input_items=[],
    )


async def kept(store: SqlResponseStore, records: list[StoredResponse]) -> list[bool]:
    return [await store.get(item.id, item.owner) is not None for item in records]


async def test_purge_deletes_the_oldest_finished_responses_first(store: SqlResponseStore, owner: str) -> None:
    # Other tests share the database: this one counts only in a time range nothing else uses.
    base = 40_000
    ages = [base + 5, base + 4, base + 3, base + 2, base + 1]
    records = [record(owner, age_days=age) for age in ages]
    for item in records:
        await store.save(item, events=[{"type": "response.created"}])
    before = NOW - (base + 1.5) * DAY
    assert await store.purge(before=int(before), limit=2) == 2
    assert await kept(store, records) == [False, False, True, True, True]
    assert await store.events(records[0].id, owner) is None
    assert await store.purge(before=int(before), limit=2) == 2
    assert await store.purge(before=int(before), limit=2) == 0
    assert await kept(store, records) == [False, False, False, False, True]


async def test_queued_and_running_responses_are_not_purged(store: SqlResponseStore, owner: str) -> None:
    records = [record(owner, age_days=50_000, status=status) for status in ("queued", "in_progress", "failed")]
    for item in records:
        await store.save(item)
    await store.purge(before=int(NOW - 49_999 * DAY), limit=100)
    assert await kept(store, records) == [True, True, False]


async def test_a_purge_round_goes_batch_by_batch_until_done(store: SqlResponseStore, owner: str) -> None:
    old = [record(owner, age_days=31) for _ in range(7)]
    recent = [record(owner, age_days=29) for _ in range(3)]
    for item in old + recent:
        await store.save(item)
    assert await Retention(store, days=30, batch=3).purge_once(now=NOW) >= 7
    assert await kept(store, old) == [False] * 7
    assert await kept(store, recent) == [True] * 3


async def test_the_purge_is_a_range_scan_of_the_age_index(tmp_path: Path) -> None:
    """On SQLite; PostgreSQL picks its plan by table statistics (bench/retention.py measures it at scale)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'plan.sqlite3'}"
    await (await open_store(url)).aclose()
    engine = create_async_engine(url)
    try:
        purge = DriverQuery(engine, purge_statement(postgres=False))
        async with engine.connect() as connection:
            plan = await connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + purge.sql, tuple(purge.arguments({"before": NOW, "limit": 10}))
            )
            details = " ".join(str(row[-1]) for row in plan)
    finally:
        await engine.dispose()
    assert "USING INDEX ix_responses_created_at" in details, details


async def test_a_server_purges_old_responses_by_itself(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'retention.sqlite3'}"
    owner = KeyChecker([KEY_A]).owner(f"Bearer {KEY_A}")
    store = await open_store(url)
    now = time.time()
    old = record(owner, age_days=(NOW - now) / DAY + 31)
    recent = record(owner, age_days=(NOW - now) / DAY + 1)
    try:
        await store.save(old)
        await store.save(recent)
    finally:
        await store.aclose()
    settings = make_settings([scripted("m", {"text": "hi"})], database_url=url, retention_days=30)
    with LiveServer(settings) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY_A}"}
        ) as http:
            for _ in range(500):
                if (await http.get(f"/v1/responses/{old.id}")).status_code == 404:
                    break
                await asyncio.sleep(0.01)
            assert (await http.get(f"/v1/responses/{old.id}")).status_code == 404
            assert (await http.get(f"/v1/responses/{recent.id}")).status_code == 200


async def test_retention_null_keeps_everything(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'forever.sqlite3'}"
    owner = KeyChecker([KEY_A]).owner(f"Bearer {KEY_A}")
    store = await open_store(url)
    ancient = record(owner, age_days=(NOW - time.time()) / DAY + 10_000)
    try:
        await store.save(ancient)
    finally:
        await store.aclose()
    settings = make_settings([scripted("m", {"text": "hi"})], database_url=url, retention_days=None)
    with LiveServer(settings) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY_A}"}
        ) as http:
            # A request after start-up: a purge at start, had there been one, would have run by now.
            await http.post("/v1/responses", json={"model": "m", "input": "hi"})
            assert (await http.get(f"/v1/responses/{ancient.id}")).status_code == 200
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM responses"))).scalar() == 2
    finally:
        await engine.dispose()
