"""Probe 6: upstream faults through a real Chat Completions upstream (bench/probes/sockets.FaultyUpstream).

- 429 with `Retry-After: 7` and no other deployment: the status, `Retry-After` and error code a client gets;
  and with a second (healthy) deployment, how many of 6 requests in the next 3 s still reach the 429 one.
- An upstream that accepts and never answers: how long a client waits (bounded at 90 s), alone and with a
  fallback model configured.
- Other faults, each streamed and not (bounded at 90 s): refused, reset, 500, malformed SSE, no `[DONE]`,
  silence after the first chunk, silence after `finish_reason`.
All of it with the deployments' default timeouts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.probes.client import Answer, Stream, call, stream
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import free_port, running, scripted
from bench.probes.sockets import FaultyUpstream

BOUND_S = 90.0
FAULTS = ("refused", "reset", "500", "malformed", "no-done", "hang-after-first", "finish-idle")
# What each fault should give (issue items 6 and 11), as (non-stream check, stream check) descriptions.
EXPECT = {
    "refused": "a fast 5xx error (no deployment left)",
    "reset": "a fast 5xx error (no deployment left)",
    "500": "a fast 5xx error (no deployment left)",
    "malformed": "failed, not hung",
    "no-done": "completed (finish_reason arrived)",
    "hang-after-first": "failed after the idle read timeout (default 60 s)",
    "finish-idle": "completed: finish_reason arrived, then silence",
}


def _entry(name: str, base_url: str) -> dict[str, Any]:
    return {"name": name, "provider": "chat_completions", "base_url": base_url, "api_key": "probe"}


def _config(database_url: str, up: FaultyUpstream) -> dict[str, Any]:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    models = [
        _entry("limited", up.base_url("429")),
        _entry("limited-pair", up.base_url("429", "pair")),
        _entry("limited-pair", up.base_url("ok", "pair")),
        _entry("hung", up.base_url("hang")),
        _entry("hung-fb", up.base_url("hang", "fb")),
        scripted("backup", text="ok"),
        _entry("fault-refused", closed),
        *[_entry(f"fault-{mode}", up.base_url(mode)) for mode in FAULTS if mode != "refused"],
    ]
    return {
        "database_url": database_url,
        "log_level": "warning",
        "models": models,
        "fallbacks": {"hung-fb": ["backup"]},
    }


def _body(model: str, streamed: bool = False) -> dict[str, Any]:
    return {"model": model, "input": "hi", "stream": streamed, "store": False}


def _in_threads(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def run(name: str, job: Callable[[], Any]) -> None:
        results[name] = job()

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BOUND_S + 30)
    return results


def _waited(seconds: float, answered: bool) -> str:
    return f"{seconds:.1f} s" if answered else f"> {BOUND_S:.0f} s"


def _rate_limit_rows(ctx: Context, base: str, up: FaultyUpstream) -> list[Row]:
    plain = call(base, "POST", "/v1/responses", _body("limited"))
    streamed = call(base, "POST", "/v1/responses", _body("limited", True))
    before = up.hits["/429/pair"]
    for _ in range(6):
        call(base, "POST", "/v1/responses", _body("limited-pair"))
        time.sleep(0.5)
    pair_hits = up.hits["/429/pair"] - before
    measured = {
        "status": plain.status,
        "headers": plain.headers,
        "body": plain.json(),
        "retry_after": plain.headers.get("retry-after"),
        "code": plain.error_field("code"),
        "type": plain.error_field("type"),
        "stream_status": streamed.status,
        "stream_retry_after": streamed.headers.get("retry-after"),
        "pair_requests": 6,
        "pair_hits_on_429_deployment": pair_hits,
    }
    outcome = (
        f"HTTP {plain.status} Retry-After {plain.headers.get('retry-after') or 'absent'} code {plain.error_field('code')}; "
        f"stream: HTTP {streamed.status} Retry-After {streamed.headers.get('retry-after') or 'absent'}; "
        f"with a healthy twin, {pair_hits} of 6 requests in 3 s still went to the 429 deployment"
    )
    ok = (
        plain.status == 429
        and plain.headers.get("retry-after") == "7"
        and plain.error_field("code") == "rate_limit_exceeded"
        and pair_hits <= 1
    )
    return [
        Row(
            "upstream",
            "429 + Retry-After: 7",
            ctx.backend,
            measured,
            outcome,
            ok,
            "429 rate_limit_exceeded with Retry-After: 7; the deployment cools down for 7 s",
        )
    ]


def _slow_rows(ctx: Context, base: str) -> list[Row]:
    jobs: dict[str, Callable[[], Any]] = {
        "hung": lambda: call(base, "POST", "/v1/responses", _body("hung"), timeout=BOUND_S),
        "hung-fb": lambda: call(base, "POST", "/v1/responses", _body("hung-fb"), timeout=BOUND_S),
    }
    for mode in FAULTS:
        jobs[mode] = partial(call, base, "POST", "/v1/responses", _body(f"fault-{mode}"), timeout=BOUND_S)
        jobs[f"{mode}/stream"] = partial(
            stream, base, "POST", "/v1/responses", _body(f"fault-{mode}", True), timeout=BOUND_S
        )
    got = _in_threads(jobs)
    rows = []
    hung, fb = got["hung"], got["hung-fb"]
    rows.append(
        Row(
            "upstream",
            "hung upstream",
            ctx.backend,
            {"status": hung.status, "seconds": round(hung.seconds, 1), "bound_s": BOUND_S},
            f"client waited {_waited(hung.seconds, hung.status != 0)} (HTTP {hung.status or '-'})",
            hung.status != 0 and hung.seconds <= 65,
            "gives up after first_token (default 60 s)",
        )
    )
    fb_model = (fb.json() or {}).get("model") if fb.status == 200 else None
    rows.append(
        Row(
            "upstream",
            "hung upstream + fallback",
            ctx.backend,
            {"status": fb.status, "seconds": round(fb.seconds, 1), "model": fb_model, "bound_s": BOUND_S},
            f"fallback answered after {_waited(fb.seconds, fb.status != 0)} (HTTP {fb.status or '-'}, model {fb_model})",
            fb.status == 200 and fb.seconds <= 65,
            "the fallback answers once first_token (default 60 s) passes",
        )
    )
    for mode in FAULTS:
        plain, streamed = got[mode], got[f"{mode}/stream"]
        data = plain.json() if plain.status == 200 else None
        plain_status = (data or {}).get("status") if isinstance(data, dict) else None
        measured = {
            "status": plain.status,
            "response_status": plain_status,
            "seconds": round(plain.seconds, 1),
            "stream_status": streamed.status,
            "stream_last": streamed.last,
            "stream_end": streamed.end,
            "stream_seconds": round(streamed.seconds, 1),
        }
        outcome = (
            f"HTTP {plain.status or '-'}{' ' + plain_status if plain_status else ''} after {_waited(plain.seconds, plain.status != 0)}; "
            f"stream: HTTP {streamed.status or '-'}, last {streamed.last}, {streamed.end} after "
            f"{_waited(streamed.seconds, streamed.end != 'timeout')}"
        )
        rows.append(
            Row(
                "upstream",
                f"fault: {mode}",
                ctx.backend,
                measured,
                outcome,
                _fault_ok(mode, plain, plain_status, streamed),
                EXPECT[mode],
            )
        )
    return rows


def _fault_ok(mode: str, plain: Answer, plain_status: str | None, streamed: Stream) -> bool:
    finished = plain.status != 0 and streamed.end != "timeout"
    if mode in ("refused", "reset", "500"):
        return finished and plain.status >= 500 and plain.seconds < 15
    if mode in ("no-done", "finish-idle"):
        return finished and plain_status == "completed" and streamed.last == "response.completed"
    return finished and streamed.last == "response.failed" and plain.seconds <= 65


@probe("upstream", "upstream 429, hung upstream (with and without fallback), other faults", budget_s=100)
def run(ctx: Context) -> list[Row]:
    with (
        scratch_database(ctx.backend, ctx.scratch("upstream")) as db,
        FaultyUpstream() as up,
        running(ctx, "upstream-server", _config(db.url, up)) as server,
    ):
        rows = _rate_limit_rows(ctx, server.url, up)
        rows += _slow_rows(ctx, server.url)
        up.release()
    return rows
