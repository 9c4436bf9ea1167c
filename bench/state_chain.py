"""Latency of `SqlResponseStore.history` (a chain; and `get`, `save`) on SQLite and PostgreSQL.

Run from the repository root:

    .venv/bin/python bench/state_chain.py                      # both backends
    .venv/bin/python bench/state_chain.py --backend sqlite --iterations 5000

SQLite uses a temporary file; PostgreSQL a fresh database `respgate_bench_<random>` on the server
given by --pg-admin-url (dropped at the end). The table is padded with unrelated responses so the
lookups do not run against a toy table. Each iteration is one awaited call, sequentially, timed with
perf_counter_ns; percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from respgate.storage.base import StoredResponse
from respgate.storage.sql import SqlResponseStore, open_store

OWNER = "bench-owner"
CHAIN_LENGTHS = (1, 10, 50)


def response_json(response_id: str, previous: str | None, turn: int) -> dict[str, Any]:
    """A Response shaped like a real one: one assistant message of ~600 characters plus the echoes."""
    text = f"Turn {turn}: " + "The weather in Paris is mild with light winds from the west. " * 10
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_764_000_000 + turn,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": "You are a helpful assistant.",
        "max_output_tokens": None,
        "model": "gpt-4.1-mini",
        "output": [
            {
                "id": f"msg_{secrets.token_hex(24)}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": previous,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
                "strict": True,
            }
        ],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 120 + turn,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 140,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 260 + turn,
        },
        "user": None,
        "metadata": {},
    }


def record(response_id: str, previous: str | None, turn: int, owner: str = OWNER) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        owner=owner,
        created_at=1_764_000_000 + turn,
        status="completed",
        previous_response_id=previous,
        response=response_json(response_id, previous, turn),
        input_items=[
            {
                "id": f"msg_{secrets.token_hex(24)}",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"What about turn {turn}?"}],
            }
        ],
    )


async def build_chain(store: SqlResponseStore, length: int) -> str:
    previous: str | None = None
    for turn in range(length):
        response_id = f"resp_{secrets.token_hex(24)}"
        await store.save(record(response_id, previous, turn))
        previous = response_id
    assert previous is not None
    return previous


def percentile(sorted_ns: list[int], fraction: float) -> float:
    index = max(0, min(len(sorted_ns) - 1, round(fraction * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[index] / 1e6


async def timed(call: Callable[[], Awaitable[Any]], iterations: int) -> str:
    """Wall-clock p50/p99 and this process's CPU time per call (all threads: aiosqlite works in one).

    On a shared machine the wall-clock tail mostly measures other processes; the CPU time does not.
    """
    for _ in range(min(200, iterations)):
        await call()
    wall: list[int] = []
    cpu: list[int] = []
    gc.collect()
    for _ in range(iterations):
        start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
        await call()
        wall.append(time.perf_counter_ns() - start)
        cpu.append(time.process_time_ns() - start_cpu)
    wall.sort()
    cpu.sort()
    return (
        f"p50 {percentile(wall, 0.50):6.3f} ms  p99 {percentile(wall, 0.99):6.3f} ms   "
        f"cpu p50 {percentile(cpu, 0.50):6.3f} ms  p99 {percentile(cpu, 0.99):6.3f} ms"
    )


@asynccontextmanager
async def sqlite_url() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite+aiosqlite:///{Path(directory) / 'bench.sqlite3'}"


@asynccontextmanager
async def postgres_url(admin_url: str) -> AsyncIterator[str]:
    name = f"respgate_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = admin_url.rsplit("/", 1)[0]
            yield f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def bench(url: str, label: str, iterations: int, padding: int) -> None:
    store = await open_store(url)
    try:
        for turn in range(padding):
            await store.save(record(f"resp_pad_{turn}", None, turn, owner=f"other-{turn % 17}"))
        heads = {length: await build_chain(store, length) for length in CHAIN_LENGTHS}
        budget = 32 * 1024 * 1024

        async def history(head: str) -> Any:
            return await store.history(head, OWNER, budget=budget, truncate=False)

        for length, head in heads.items():
            walked = await history(head)
            assert walked is not None and len(walked.items) == 2 * length
            result = await timed(lambda head=head: history(head), iterations)  # type: ignore[misc]
            print(f"{label:10} chain({length:>2})  {result}")
        one = heads[1]
        print(f"{label:10} get        {await timed(lambda: store.get(one, OWNER), iterations)}")
        sample = record(one, None, 0)
        events = [{"type": "response.output_text.delta", "sequence_number": n, "delta": "x"} for n in range(200)]
        result = await timed(lambda: store.save(sample, events), max(200, iterations // 5))
        print(f"{label:10} save+ev    {result}")
    finally:
        await store.aclose()


async def main() -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--padding", type=int, default=2000, help="unrelated responses in the table")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        async with sqlite_url() as url:
            await bench(url, "sqlite", args.iterations, args.padding)
    if args.backend in ("postgres", "both"):
        async with postgres_url(args.pg_admin_url) as url:
            await bench(url, "postgresql", args.iterations, args.padding)


if __name__ == "__main__":
    asyncio.run(main())
