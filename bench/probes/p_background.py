"""Probe 2: background responses in flight when the server process dies (kill -9) or is stopped (SIGTERM).

130 background responses on a scripted model slow enough (40 tokens, 0.25 s apart: ~10 s each) that all
are queued or running when the signal comes 2 s after the last is accepted. A new server then starts on
the same database and every response is read through the API right away, after 60 s and after 120 s;
`GET ?stream=true` and `cancel` are tried on two of them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from bench.probes.client import call, stream
from bench.probes.db import Database, scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import Server, running, scripted

N = 130
TOKENS = 40
DELAY_S = 0.25
CHECKPOINTS_S = (0, 60, 120)
TARGET = (
    "none stuck queued/in_progress within 60 s (+ the work's own ~10 s): each completed (resumed) or failed; "
    "cancel works from any process; SIGTERM stores none as cancelled"
)


def _config(database_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "log_level": "warning",
        "models": [scripted("slow", echo=True, delay=DELAY_S)],
    }


def _api_statuses(base: str, ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rid in ids:
        answer = call(base, "GET", f"/v1/responses/{rid}", timeout=10)
        data = answer.json()
        status = data.get("status") if answer.status == 200 and isinstance(data, dict) else f"http_{answer.status}"
        counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def _submit(base: str) -> tuple[list[str], dict[str, int]]:
    text = " ".join(f"w{i}" for i in range(TOKENS))
    ids: list[str] = []
    answers: dict[str, int] = {}
    for _ in range(N):
        answer = call(base, "POST", "/v1/responses", {"model": "slow", "input": text, "background": True})
        data = answer.json()
        key = (
            str(data.get("status")) if answer.status == 200 and isinstance(data, dict) else f"http_{answer.status}"
        )
        answers[key] = answers.get(key, 0) + 1
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            ids.append(data["id"])
    return ids, answers


def _fmt(counts: dict[str, int]) -> str:
    return " ".join(f"{status} {count}" for status, count in sorted(counts.items())) or "-"


def _follow_up(server: Server, ids: list[str]) -> dict[str, Any]:
    """Statuses at each checkpoint after the restart, plus one replay and one cancel right after it."""
    out: dict[str, Any] = {}
    for mark in CHECKPOINTS_S:
        wait = server.started_at + mark - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        out[f"after_{mark}s"] = _api_statuses(server.url, ids)
        if mark == 0:
            replay = stream(server.url, "GET", f"/v1/responses/{ids[0]}?stream=true", timeout=5)
            out["replay"] = {
                "status": replay.status,
                "events": len(replay.events),
                "last_event": replay.last,
                "end": replay.end,
                "seconds": round(replay.seconds, 2),
            }
            cancel = call(server.url, "POST", f"/v1/responses/{ids[-1]}/cancel", timeout=30)
            data = cancel.json() if cancel.status == 200 else None
            out["cancel"] = {
                "status": cancel.status,
                "response_status": data.get("status") if isinstance(data, dict) else None,
                "message": re.sub(r"resp_\w+", "resp_…", str(cancel.error_field("message") or "")),
            }
    return out


def _variant(ctx: Context, db: Database, how: str) -> Row:
    measured: dict[str, Any] = {"n": N, "work_s": TOKENS * DELAY_S}
    with running(ctx, f"background-{how}-1", _config(db.url)) as first:
        ids, accepted = _submit(first.url)
        measured["accepted"] = accepted
        if len(ids) < 2:
            return Row(
                "background", how, ctx.backend, measured, f"only {len(ids)} accepted: {accepted}", False, TARGET
            )
        time.sleep(2.0)
        measured["before_signal"] = db.statuses(ids)
        if how == "kill9":
            first.kill()
        else:
            measured["sigterm_exit_s"] = first.terminate(timeout=60)
    measured["at_exit"] = db.statuses(ids)
    with running(ctx, f"background-{how}-2", _config(db.url)) as second:
        measured.update(_follow_up(second, ids))
    cancel, replay = measured["cancel"], measured["replay"]
    stuck = {s: measured["after_120s"].get(s, 0) for s in ("queued", "in_progress")}
    cancelled_by_exit = measured["at_exit"].get("cancelled", 0)
    outcome = (
        f"at exit: {_fmt(measured['at_exit'])}; after restart 0 s: {_fmt(measured['after_0s'])}; "
        f"60 s: {_fmt(measured['after_60s'])}; 120 s: {_fmt(measured['after_120s'])}; "
        f"cancel → {cancel['status']} {cancel['response_status'] or cancel['message'] or ''}; "
        f"GET ?stream=true → {replay['status']}, {replay['events']} events, last {replay['last_event']}, "
        f"{'still open after 5 s' if replay['end'] == 'timeout' else replay['end']}"
    )
    if how == "sigterm":
        outcome = f"exit after {measured['sigterm_exit_s']} s; " + outcome
    # An empty stream that ends at once is the failure; one still open (the work not yet resumed) follows.
    replay_ok = replay["status"] == 200 and (replay["events"] > 0 or replay["end"] == "timeout")
    ok = sum(stuck.values()) == 0 and cancel["status"] == 200 and cancelled_by_exit == 0 and replay_ok
    return Row(
        probe="background",
        case="kill -9" if how == "kill9" else "SIGTERM",
        backend=ctx.backend,
        measured=measured,
        outcome=outcome,
        ok=ok,
        target=TARGET,
    )


@probe("background", "background responses across kill -9 and SIGTERM", per_backend=True, budget_s=270)
def run(ctx: Context) -> list[Row]:
    rows = []
    for how in ("kill9", "sigterm"):
        started = time.monotonic()
        with scratch_database(ctx.backend, ctx.scratch("background")) as db:
            row = _variant(ctx, db, how)
        row.seconds = round(time.monotonic() - started, 1)
        rows.append(row)
    return rows
