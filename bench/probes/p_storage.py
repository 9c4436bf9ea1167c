"""Probe 7: bytes stored per request, and whether anything purges old responses.

Stored bytes are read from the database (the logical size of every text column of every table, before
and after), so the number does not depend on the schema of the version under test. Three requests: an
ordinary short one, as JSON and streamed (its answer counted as the final response, as for JSON), and
an echo of 100,000 tokens (scaled down from the issue's 1M; the numbers are not extrapolated). Retention: settings whose name says so, indexes on `responses`, and a
behavioural check: the ordinary response's `created_at` is moved 60 days back, the server restarted
with its default config, and the row looked for 15 s later.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

from bench.probes.client import call, stream
from bench.probes.db import Database, scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted

ECHO_TOKENS = 100_000
PURGE_WAIT_S = 15.0
DAY = 86_400
TARGET_SIZE = "events stored only where they can be replayed (or compactly): stored bytes ≤ 3 x (request + answer)"
TARGET_RETENTION = (
    "a retention setting (default like OpenAI's 30 days) purges old responses; an index keeps it cheap"
)


def _config(database_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "log_level": "warning",
        "models": [scripted("plain", text="Hello! How can I help you today?"), scripted("echo", echo=True)],
    }


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        table: after.get(table, 0) - before.get(table, 0)
        for table in after
        if after.get(table, 0) != before.get(table, 0)
    }


def _send(base: str, body: dict[str, Any]) -> tuple[int, float, bytes, Any]:
    """Status, seconds, the answer's bytes and its final response (for a stream: `response.completed`'s)."""
    if not body.get("stream"):
        answer = call(base, "POST", "/v1/responses", body, timeout=300)
        return answer.status, answer.seconds, answer.body, answer.json() if answer.status == 200 else None
    streamed = stream(base, "POST", "/v1/responses", body, timeout=300)
    final = next((e.get("response") for e in streamed.events if e.get("type") == "response.completed"), None)
    return streamed.status, streamed.seconds, json.dumps(final).encode() if final else streamed.body, final


def _stored(ctx: Context, db: Database, base: str, body: dict[str, Any], case: str) -> tuple[Row, str | None]:
    before = db.text_bytes()
    status, seconds, answer, data = _send(base, body)
    after = db.text_bytes()
    delta = _delta(before, after)
    total = sum(delta.values())
    request_bytes = len(json.dumps(body).encode())
    usage = (data if isinstance(data, dict) else {}).get("usage") or {}
    measured = {
        "status": status,
        "seconds": round(seconds, 2),
        "request_bytes": request_bytes,
        "answer_bytes": len(answer),
        "output_tokens": usage.get("output_tokens"),
        "stored_bytes": total,
        "stored_per_table": delta,
    }
    per_table = ", ".join(f"{table} {_size(size)}" for table, size in sorted(delta.items()))
    outcome = (
        f"HTTP {status}, {usage.get('output_tokens')} output tokens; request {_size(request_bytes)}, "
        f"answer {_size(len(answer))}; stored {_size(total)} ({per_table})"
    )
    ok = status == 200 and data is not None and total <= 3 * (request_bytes + len(answer))
    rid = data.get("id") if isinstance(data, dict) else None
    return Row("storage", case, ctx.backend, measured, outcome, ok, TARGET_SIZE), rid


def _settings_fields(ctx: Context) -> list[str]:
    code = "import json; from respgate.config import Settings; print(json.dumps(sorted(Settings.model_fields)))"
    done = subprocess.run(
        [ctx.python, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": str(ctx.src)}, check=False
    )
    return list(json.loads(done.stdout)) if done.returncode == 0 else []


def _retention(ctx: Context, db: Database, rid: str | None) -> Row:
    fields = _settings_fields(ctx)
    named = [f for f in fields if re.search(r"retention|purge|ttl|expir|keep_days|max_age", f)]
    indexes = db.indexes("responses")
    on_created = [ix for ix in indexes if "created_at" in ix]
    purged: bool | None = None
    if rid is not None:
        if db.backend == "postgres":
            db.execute(f"UPDATE responses SET created_at = created_at - {60 * DAY} WHERE id = $1", rid)
        else:
            db.execute(f"UPDATE responses SET created_at = created_at - {60 * DAY} WHERE id = ?", rid)
        with running(ctx, "storage-restart", _config(db.url)) as server:
            time.sleep(PURGE_WAIT_S)
            purged = call(server.url, "GET", f"/v1/responses/{rid}").status == 404 and not db.query(
                "SELECT 1 FROM responses WHERE id = " + ("$1" if db.backend == "postgres" else "?"), rid
            )
    measured = {"settings": fields, "retention_settings": named, "indexes": indexes, "purged_60_day_old": purged}
    outcome = (
        f"retention setting: {', '.join(named) or 'none'}; index on created_at: {', '.join(on_created) or 'none'}; "
        f"a 60-day-old response {'was' if purged else 'was not'} purged {PURGE_WAIT_S:.0f} s after a restart"
    )
    return Row(
        "storage",
        "retention",
        ctx.backend,
        measured,
        outcome,
        bool(named and on_created and purged),
        TARGET_RETENTION,
    )


@probe("storage", "bytes stored per request; retention", per_backend=True, budget_s=40)
def run(ctx: Context) -> list[Row]:
    words = " ".join(["abcd"] * ECHO_TOKENS)
    ordinary_body = {"model": "plain", "input": "Hello, how are you?"}
    with scratch_database(ctx.backend, ctx.scratch("storage")) as db:
        with running(ctx, "storage-server", _config(db.url)) as server:
            ordinary, rid = _stored(ctx, db, server.url, ordinary_body, "ordinary")
            streamed, _ = _stored(ctx, db, server.url, {**ordinary_body, "stream": True}, "ordinary, streamed")
            echo, _ = _stored(
                ctx, db, server.url, {"model": "echo", "input": words}, f"echo of {ECHO_TOKENS:,} tokens"
            )
        echo.notes.append(
            "scaled down from the issue's 1M-token echo (2 MB response + 224 MB of events); not extrapolated"
        )
        return [ordinary, streamed, echo, _retention(ctx, db, rid)]
