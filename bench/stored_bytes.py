"""Bytes stored per request: an ordinary answer (JSON and streamed) and a 1M-token echo, from any tree.

    python -m bench.stored_bytes                                  # this tree's src/
    python -m bench.stored_bytes --src /work/wt/base/src --label before

Each case runs on a fresh database (SQLite file, or a new PostgreSQL database) behind a real
`python -m respgate serve` with a scripted model, then reads what one request left behind: the JSON
text of `responses` (the response and its input items) and of `response_events`, and the space the
database uses for them (SQLite: the file after a checkpoint; PostgreSQL: `pg_total_relation_size`,
which counts TOAST after its compression). Results: a table on stdout and
`bench/results/stored_bytes-<label>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench.machine import describe
from bench.procs import RESULTS, free_port, log, stop, wait_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-stored-bytes"
ORDINARY = "What is the weather like in Paris today, and should I take an umbrella?"
CASES: dict[str, dict[str, Any]] = {
    "ordinary, JSON": {"model": "answer", "input": ORDINARY},
    "ordinary, streamed": {"model": "answer", "input": ORDINARY, "stream": True},
    # The scripted model repeats the input, one token per two characters.
    "1M-token echo, JSON": {"model": "echo", "input": " a" * 1_000_000},
}
ANSWER = (
    "It is 18 °C and cloudy in Paris, with light rain expected in the afternoon. "
    "Yes, take an umbrella if you will be out after lunch."
)

LOGICAL_SQL = {
    "responses": "SELECT coalesce(sum(length(CAST(response AS BLOB)) + length(CAST(input_items AS BLOB))), 0) FROM responses",
    "response_events": "SELECT coalesce(sum(length(CAST(events AS BLOB))), 0) FROM response_events",
}
LOGICAL_PG = {
    "responses": "SELECT coalesce(sum(octet_length(response) + octet_length(input_items)), 0) FROM responses",
    "response_events": "SELECT coalesce(sum(octet_length(events)), 0) FROM response_events",
}


def send(base_url: str, body: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
        if body.get("stream"):
            with client.stream("POST", "/v1/responses", json=body) as answer:
                for _ in answer.iter_bytes():
                    pass
                return answer.status_code
        return client.post("/v1/responses", json=body).status_code


def serve_one(src: Path, url: str, body: dict[str, Any], workdir: Path) -> tuple[int, float]:
    port = free_port()
    config = workdir / "config.yaml"
    models = [
        {"name": "answer", "provider": "scripted", "script": [{"text": ANSWER}]},
        {"name": "echo", "provider": "scripted", "script": [{"echo": True}]},
    ]
    config.write_text(
        json.dumps({"api_keys": [KEY], "database_url": url, "log_level": "warning", "models": models})
    )
    with (workdir / "server.log").open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "respgate", "serve", "--config", str(config), "--port", str(port)],
            env={**os.environ, "PYTHONPATH": str(src)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 60, server)
        started = time.monotonic()
        status = send(f"http://127.0.0.1:{port}", body)
        return status, time.monotonic() - started
    finally:
        stop(server)


def measure_sqlite(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes = {table: connection.execute(sql).fetchone()[0] for table, sql in LOGICAL_SQL.items()}
    sizes["on_disk"] = path.stat().st_size
    return sizes


async def measure_postgres(server: str, database: str) -> dict[str, int]:
    connection = await asyncpg.connect(f"{server}/{database}")
    try:
        sizes = {table: int(await connection.fetchval(sql)) for table, sql in LOGICAL_PG.items()}
        sizes["on_disk"] = int(
            await connection.fetchval(
                "SELECT pg_total_relation_size('responses') + pg_total_relation_size('response_events')"
            )
        )
    finally:
        await connection.close()
    return sizes


async def _admin(server: str, statement: str) -> None:
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def run_case(args: argparse.Namespace, backend: str, case: str, workdir: Path) -> dict[str, Any]:
    body = CASES[case]
    if backend == "sqlite":
        path = workdir / f"{secrets.token_hex(4)}.sqlite3"
        status, seconds = serve_one(args.src, f"sqlite+aiosqlite:///{path}", body, workdir)
        sizes = measure_sqlite(path)
    else:
        database = f"respgate_bytes_{secrets.token_hex(4)}"
        asyncio.run(_admin(args.pg_server, f'CREATE DATABASE "{database}"'))
        try:
            url = f"{args.pg_server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"
            status, seconds = serve_one(args.src, url, body, workdir)
            sizes = asyncio.run(measure_postgres(args.pg_server, database))
        finally:
            asyncio.run(_admin(args.pg_server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    return {"backend": backend, "case": case, "status": status, "seconds": round(seconds, 2), **sizes}


def human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the source tree to run (its src/)")
    parser.add_argument("--label", default=None, help="names the result file (default: after the --src tree)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    args.src = args.src.resolve()
    label = args.label or args.src.parent.name
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    header = describe({"src": str(args.src)})
    rows = []
    with tempfile.TemporaryDirectory(prefix="stored-bytes-") as scratch:
        for backend in backends:
            for case in CASES:
                log(f"{backend}: {case}")
                rows.append(run_case(args, backend, case, Path(scratch)))
                log(f"  {rows[-1]}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"stored_bytes-{label}.json"
    out.write_text(json.dumps({"machine": header, "command": sys.argv, "rows": rows}, indent=2) + "\n")
    print(f"# stored bytes per request, tree {args.src}\n")
    print(
        "| backend | request | answer | responses (JSON) | response_events (JSON) | space used (SQLite: file; PostgreSQL: both tables) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['backend']} | {row['case']} | {row['status']} in {row['seconds']} s | {human(row['responses'])} "
            f"| {human(row['response_events'])} | {human(row['on_disk'])} |"
        )
    print(f"\n(written to {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
