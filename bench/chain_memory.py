"""Peak memory of a server answering one small request at the tip of a long, heavy chain.

A chain of 40 stored responses with 8 MB of input each, then a ~120-byte request whose
`previous_response_id` is the tip: how much memory does the server process take for it, alone and
four at once, and does it give it back? Runs a real `python -m respgate serve` (scripted model) on
SQLite and on PostgreSQL, from any source tree, so the same script measures before and after:

    python -m bench.chain_memory                                  # this tree's src/
    python -m bench.chain_memory --src /work/wt/base/src --label before
    python -m bench.chain_memory --backend sqlite --links 10 --mb 2   # a quick look

The chain is written straight through the tree's own store (`open_store(url).save(...)`) by a
helper process: building it through the API would cost a quadratic amount of work per link and
measure the build, not the probe. A fresh server is started for every measurement, so its
`VmHWM` (peak resident set) before the request is the start-up peak and after it is the request's.
`VmRSS` is read again two seconds after the answers, to see whether the memory was given back.
Each measurement sends the request with `truncation: "disabled"` (the default) and `"auto"`.
Results: a table on stdout and `bench/results/chain_memory-<label>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench.machine import describe
from bench.procs import RESULTS, free_port, http_json, log, stop, wait_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-chain-memory"
MODEL = "bench"

# Runs in a helper process on the measured tree: stores `links` chained responses of `mb` MB of
# input each (random text, so PostgreSQL's compression does not shrink it) and prints the tip's id.
SEED = r"""
import asyncio, base64, os, sys, time
from respgate.storage.base import StoredResponse
from respgate.storage.sql import open_store

async def main(url, links, size):
    store = await open_store(url)
    previous = None
    now = int(time.time())
    try:
        for turn in range(links):
            response_id = "resp_" + os.urandom(24).hex()
            text = base64.b64encode(os.urandom(size * 3 // 4)).decode()
            user = {"id": "msg_" + os.urandom(24).hex(), "type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": text}], "status": "completed"}
            answer = {"id": "msg_" + os.urandom(24).hex(), "type": "message", "status": "completed",
                      "role": "assistant",
                      "content": [{"type": "output_text", "text": f"Noted ({turn}).", "annotations": [],
                                   "logprobs": []}]}
            response = {"id": response_id, "object": "response", "created_at": now, "status": "completed",
                        "background": False, "completed_at": now, "error": None, "incomplete_details": None,
                        "instructions": None, "model": "bench", "output": [answer], "parallel_tool_calls": True,
                        "previous_response_id": previous, "store": True, "temperature": 1.0,
                        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
                        "truncation": "disabled", "metadata": {}, "usage": {
                            "input_tokens": size // 4, "input_tokens_details": {"cached_tokens": 0},
                            "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                            "total_tokens": size // 4 + 3}}
            await store.save(StoredResponse(id=response_id, owner=sys.argv[4], created_at=now, status="completed",
                                            previous_response_id=previous, response=response, input_items=[user]))
            previous = response_id
    finally:
        await store.aclose()
    print(previous)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

OWNER_OF_KEY = r"""
import sys
from respgate.http.auth import KeyChecker
print(KeyChecker([sys.argv[1]]).owner("Bearer " + sys.argv[1]))
"""


def tree_env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src)}


def owner_of_key(src: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OWNER_OF_KEY, KEY], env=tree_env(src), capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def seed(src: Path, url: str, links: int, size: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SEED, url, str(links), str(size), owner_of_key(src)],
        env=tree_env(src),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed: {done.stderr.decode()[-3000:]}")
    return done.stdout.decode().strip()


def memory_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(line.split()[1])
    return values


def ask(base_url: str, tip: str, truncation: str) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "input": "And now?",
        "previous_response_id": tip,
        "truncation": truncation,
    }
    started = time.monotonic()
    status, answer = http_json(
        "POST", f"{base_url}/v1/responses", body, timeout=600, headers={"Authorization": f"Bearer {KEY}"}
    )
    error = answer.get("error") if isinstance(answer, dict) else None
    return {
        "status": status,
        "code": error.get("code") if isinstance(error, dict) else None,
        "seconds": round(time.monotonic() - started, 2),
        "request_bytes": len(json.dumps(body)),
    }


def measure(src: Path, url: str, tip: str, *, truncation: str, concurrency: int, workdir: Path) -> dict[str, Any]:
    """One fresh server, `concurrency` requests at the tip at once; its memory before and after."""
    port = free_port()
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "api_keys": [KEY],
                "database_url": url,
                "log_level": "warning",
                "models": [{"name": MODEL, "provider": "scripted", "script": [{"text": "You said a lot."}]}],
            }
        )
    )
    log_path = workdir / f"server-{truncation}-{concurrency}.log"
    with log_path.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "respgate", "serve", "--config", str(config), "--port", str(port)],
            env=tree_env(src),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, 60, server)
        base_url = f"http://127.0.0.1:{port}"
        http_json("GET", f"{base_url}/healthz")
        before = memory_kib(server.pid)
        with ThreadPoolExecutor(concurrency) as pool:
            answers = list(pool.map(lambda _: ask(base_url, tip, truncation), range(concurrency)))
        after = memory_kib(server.pid)
        time.sleep(2)
        settled = memory_kib(server.pid)
    finally:
        stop(server)
    return {
        "truncation": truncation,
        "concurrency": concurrency,
        "answers": answers,
        "hwm_before_mib": round(before["VmHWM"] / 1024, 1),
        "hwm_after_mib": round(after["VmHWM"] / 1024, 1),
        "rss_before_mib": round(before["VmRSS"] / 1024, 1),
        "rss_after_mib": round(after["VmRSS"] / 1024, 1),
        "rss_2s_later_mib": round(settled["VmRSS"] / 1024, 1),
    }


async def _admin(server: str, statement: str) -> None:
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def run_backend(args: argparse.Namespace, backend: str, workdir: Path) -> list[dict[str, Any]]:
    database: str | None = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'chain.sqlite3'}"
    else:
        database = f"respgate_chainmem_{secrets.token_hex(4)}"
        asyncio.run(_admin(args.pg_server, f'CREATE DATABASE "{database}"'))
        url = f"{args.pg_server.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"
    try:
        log(f"{backend}: storing {args.links} responses of {args.mb} MB input each")
        tip = seed(args.src, url, args.links, args.mb * 1024 * 1024)
        rows = []
        for truncation in args.truncation:
            for concurrency in args.concurrency:
                log(f"{backend}: truncation={truncation}, {concurrency} request(s) at once")
                row = measure(args.src, url, tip, truncation=truncation, concurrency=concurrency, workdir=workdir)
                rows.append({"backend": backend, **row})
                log(f"  {row}")
        return rows
    finally:
        if database is not None:
            asyncio.run(_admin(args.pg_server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | truncation | requests | answers | VmHWM before → after (MiB) | VmRSS before → after → 2 s later (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        answers = ", ".join(
            f"{answer['status']}{' ' + answer['code'] if answer['code'] else ''} in {answer['seconds']} s"
            for answer in row["answers"]
        )
        lines.append(
            f"| {row['backend']} | {row['truncation']} | {row['concurrency']} | {answers} "
            f"| {row['hwm_before_mib']} → {row['hwm_after_mib']} "
            f"| {row['rss_before_mib']} → {row['rss_after_mib']} → {row['rss_2s_later_mib']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the source tree to run (its src/)")
    parser.add_argument("--label", default=None, help="names the result file (default: after the --src tree)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--links", type=int, default=40)
    parser.add_argument("--mb", type=int, default=8, help="MB of input per stored response")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--truncation", nargs="+", choices=["disabled", "auto"], default=["disabled", "auto"])
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    args.src = args.src.resolve()
    label = args.label or args.src.parent.name
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    header = describe({"src": str(args.src), "links": args.links, "mb_per_link": args.mb})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="chain-memory-") as scratch:
        for backend in backends:
            rows += run_backend(args, backend, Path(scratch))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"chain_memory-{label}.json"
    out.write_text(json.dumps({"machine": header, "command": sys.argv, "rows": rows}, indent=2) + "\n")
    print(f"# chain memory: {args.links} x {args.mb} MB, tree {args.src}\n")
    print(table(rows))
    print(f"\n(written to {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
