"""What the retention purge costs on ~100k stored responses, and what it costs everything else.

    python -m bench.retention                          # both backends, 100k rows, half of them expired
    python -m bench.retention --batch 100 --index-too  # another batch size; and without the age index
    python -m bench.retention --rows 20000 --backend sqlite

A fresh database per run (SQLite file, or a new PostgreSQL database, dropped at the end) is filled
with `--rows` responses of about 2 KB, created evenly over the last 60 days, one in ten with 20 KB of
stored events (as background responses keep). Then one purge round of the 30-day retention runs the
way a server runs it (`Retention.purge_once`: `--batch` deletes a transaction, then a pause as long as
the batch took), timed batch by batch, while two other tasks read stored responses by id and save new ones in
a loop: the purge's cost to everything else is their latency. With `--index-too` the same runs on a
database without `ix_responses_created_at`. Results: a table on stdout and
`bench/results/retention-batch<N>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import insert, text

from bench.machine import describe
from bench.procs import RESULTS, log
from respgate.storage.base import StoredResponse
from respgate.storage.retention import DAY, Retention
from respgate.storage.sql import create_store_engine, open_store
from respgate.storage.tables import response_events, responses

ROOT = Path(__file__).resolve().parent.parent
OWNER = "bench-retention"
TEXT = "The weather in Paris is mild with light winds from the west. " * 25


def rows(count: int, now: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    response_rows, event_rows = [], []
    for n in range(count):
        response_id = f"resp_{secrets.token_hex(24)}"
        output = [
            {
                "id": f"msg_{secrets.token_hex(24)}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": TEXT}],
            }
        ]
        items = [
            {
                "id": f"msg_{secrets.token_hex(24)}",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"Question {n}"}],
            }
        ]
        encoded_items, encoded_output = orjson.dumps(items), orjson.dumps(output)
        response_rows.append(
            {
                "id": response_id,
                "owner": OWNER,
                "created_at": now - int(60 * DAY * n / count),
                "status": "completed",
                "previous_response_id": None,
                "size": len(encoded_items) + len(encoded_output),
                "response": orjson.dumps({"id": response_id, "object": "response", "output": output}).decode(),
                "input_items": encoded_items.decode(),
            }
        )
        if n % 10 == 0:
            event_rows.append({"response_id": response_id, "events": "x" * 20_000})
    return response_rows, event_rows


async def fill(url: str, count: int, now: int, *, with_index: bool) -> list[str]:
    """Insert the rows straight into the migrated tables (100k saves would take minutes); the kept ids."""
    await (await open_store(url)).aclose()
    response_rows, event_rows = rows(count, now)
    engine = create_store_engine(url)
    try:
        async with engine.begin() as connection:
            if not with_index:
                await connection.execute(text("DROP INDEX ix_responses_created_at"))
            for start in range(0, count, 5000):
                await connection.execute(insert(responses), response_rows[start : start + 5000])
            for start in range(0, len(event_rows), 5000):
                await connection.execute(insert(response_events), event_rows[start : start + 5000])
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    finally:
        await engine.dispose()
    return [row["id"] for row in response_rows[: count // 2]]  # the newest half: kept


def fresh(now: int) -> StoredResponse:
    response_id = f"resp_{secrets.token_hex(24)}"
    return StoredResponse(
        id=response_id,
        owner=OWNER,
        created_at=now,
        status="completed",
        previous_response_id=None,
        response={"id": response_id, "object": "response", "output": []},
        input_items=[],
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


async def measure(url: str, count: int, *, batch: int, with_index: bool) -> dict[str, Any]:
    now = int(time.time())
    kept = await fill(url, count, now, with_index=with_index)
    store = await open_store(url)
    reads: list[float] = []
    writes: list[float] = []
    purging = asyncio.Event()

    async def timed(into: list[float], work: Any, pause: float) -> None:
        while not purging.is_set():
            started = time.perf_counter()
            await work()
            into.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(pause)

    async def read() -> None:
        assert await store.get(random.choice(kept), OWNER) is not None

    async def write() -> None:
        await store.save(fresh(now))

    try:
        idle: list[float] = []
        for _ in range(300):
            started = time.perf_counter()
            await read()
            idle.append((time.perf_counter() - started) * 1000)
        others = [asyncio.create_task(timed(reads, read, 0.001)), asyncio.create_task(timed(writes, write, 0.005))]
        batches: list[float] = []

        class Timed:
            """The store, with each purge batch timed."""

            async def purge(self, *, before: int, limit: int) -> int:
                started = time.perf_counter()
                deleted = await store.purge(before=before, limit=limit)
                batches.append((time.perf_counter() - started) * 1000)
                return deleted

        started_round = time.perf_counter()
        purged = await Retention(Timed(), days=30, batch=batch).purge_once(now=now)  # type: ignore[arg-type]
        total = time.perf_counter() - started_round
        purging.set()
        await asyncio.gather(*others)
    finally:
        await store.aclose()
    return {
        "index": with_index,
        "rows": count,
        "purged": purged,
        "batches": len(batches),
        "round_s": round(total, 2),
        "batch_ms_p50": percentile(batches, 0.5),
        "batch_ms_max": percentile(batches, 1.0),
        "read_ms_p50_idle": percentile(idle, 0.5),
        "read_ms_p99_idle": percentile(idle, 0.99),
        "read_ms_p50_purging": percentile(reads, 0.5),
        "read_ms_p99_purging": percentile(reads, 0.99),
        "write_ms_p50_purging": percentile(writes, 0.5),
        "write_ms_p99_purging": percentile(writes, 0.99),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="retention-") as scratch:
        for backend in backends:
            for with_index in (True, False) if args.index_too else (True,):
                log(f"{backend}: {args.rows} rows, batches of {args.batch}, index {'on' if with_index else 'off'}")
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(scratch) / f'{secrets.token_hex(4)}.sqlite3'}"
                    row = await measure(url, args.rows, batch=args.batch, with_index=with_index)
                else:
                    database = f"respgate_retention_{secrets.token_hex(4)}"
                    admin = await asyncpg.connect(f"{args.pg_server}/postgres")
                    await admin.execute(f'CREATE DATABASE "{database}"')
                    try:
                        url = f"{args.pg_server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"
                        row = await measure(url, args.rows, batch=args.batch, with_index=with_index)
                    finally:
                        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                        await admin.close()
                results.append({"backend": backend, **row})
                log(f"  {results[-1]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200, help="deletes per transaction")
    parser.add_argument("--index-too", action="store_true", help="also measure without the age index")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    header = describe({"rows": args.rows, "batch": args.batch})
    results = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"retention-batch{args.batch}.json"
    out.write_text(json.dumps({"machine": header, "command": sys.argv, "rows": results}, indent=2) + "\n")
    print(f"# retention purge: {args.rows} responses over 60 days, 30-day retention, batches of {args.batch}\n")
    print(
        "| backend | age index | purged | batches | round | batch p50 / max "
        "| reads p50 / p99 idle | reads p50 / p99 purging | saves p50 / p99 purging |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results:
        print(
            f"| {row['backend']} | {'yes' if row['index'] else 'no'} | {row['purged']} | {row['batches']} "
            f"| {row['round_s']} s | {row['batch_ms_p50']} / {row['batch_ms_max']} ms "
            f"| {row['read_ms_p50_idle']} / {row['read_ms_p99_idle']} ms "
            f"| {row['read_ms_p50_purging']} / {row['read_ms_p99_purging']} ms "
            f"| {row['write_ms_p50_purging']} / {row['write_ms_p99_purging']} ms |"
        )
    print(f"\n(written to {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
