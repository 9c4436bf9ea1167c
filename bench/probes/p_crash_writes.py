"""Probe: `kill -9` while stored responses and conversation turns are being written; no acknowledged write lost.

Four clients write for 2 s (three create stored responses, one adds turns to a conversation), then the
server is killed. A new server on the same database must return every response whose 200 reached its
client, and the conversation must hold both items (input and output) of every acknowledged turn.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.probes.client import call
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted

WRITERS = 3
WRITE_S = 2.0
TARGET = "every acknowledged response and conversation turn is there after the restart"


def _config(database_url: str) -> dict[str, Any]:
    return {"database_url": database_url, "log_level": "warning", "models": [scripted("plain", text="ok")]}


def _count_items(base: str, conversation: str) -> int:
    held, after = 0, ""
    while True:
        page = call(base, "GET", f"/v1/conversations/{conversation}/items?limit=100&order=asc{after}").json()
        if not isinstance(page, dict) or not page.get("data"):
            return held
        held += len(page["data"])
        if not page.get("has_more"):
            return held
        after = f"&after={page['last_id']}"


@probe("crash_writes", "kill -9 during writes: no acknowledged write lost", per_backend=True, budget_s=20)
def run(ctx: Context) -> list[Row]:
    acked: list[str] = []
    turns: list[str] = []
    stop = threading.Event()
    with scratch_database(ctx.backend, ctx.scratch("crash")) as db:
        with running(ctx, "crash-writes-1", _config(db.url)) as first:
            conversation = call(first.url, "POST", "/v1/conversations", {}).json()["id"]

            def writer(with_conversation: bool) -> None:
                n = 0
                while not stop.is_set():
                    body: dict[str, Any] = {"model": "plain", "input": f"write {n}"}
                    if with_conversation:
                        body["conversation"] = conversation
                    answer = call(first.url, "POST", "/v1/responses", body, timeout=10)
                    data = answer.json()
                    if answer.status == 200 and isinstance(data, dict):
                        (turns if with_conversation else acked).append(data["id"])
                    n += 1

            threads = [
                threading.Thread(target=writer, args=(i == WRITERS,), daemon=True) for i in range(WRITERS + 1)
            ]
            for thread in threads:
                thread.start()
            time.sleep(WRITE_S)
            first.kill()
            stop.set()
            for thread in threads:
                thread.join(timeout=15)
        with running(ctx, "crash-writes-2", _config(db.url)) as second:
            missing = [
                rid for rid in acked + turns if call(second.url, "GET", f"/v1/responses/{rid}").status != 200
            ]
            held = _count_items(second.url, conversation)
    expected_items = 2 * len(turns)
    measured = {
        "acked_responses": len(acked),
        "acked_turns": len(turns),
        "missing_responses": len(missing),
        "conversation_items": held,
        "expected_items_at_least": expected_items,
    }
    short = held < expected_items
    outcome = (
        f"acknowledged {len(acked)} responses + {len(turns)} conversation turns before the kill; after restart "
        f"missing {len(missing)}; conversation holds {held} items (≥ {expected_items} expected)"
    )
    return [
        Row(
            "crash_writes",
            "kill -9 during writes",
            ctx.backend,
            measured,
            outcome,
            not missing and not short,
            TARGET,
        )
    ]
