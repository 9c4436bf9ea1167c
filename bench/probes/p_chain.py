"""Probe 3: memory for a small request at the tip of a long chain of large responses.

40 responses, each with 8 MB of (incompressible) input, chained by `previous_response_id`, are built
first by a server whose `max_body_bytes` is raised to 1 GiB (a fixed server ties its context cap to that
setting, so it still accepts the links; `--builder-src` builds them with another tree instead). Then a
server with the default config answers a ~120-byte request at the tip: once alone, then four at once
(each on a fresh process); then the same with `truncation: "auto"`, which asks for the oldest history
to be left out instead of a 400 (a tree that does not do that over the cap shows what it does instead).
Measured from /proc: VmHWM (peak RSS) and VmRSS at start, after the answers, and 5 s later.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Any

from bench.probes.client import Answer, call
from bench.probes.db import Database, scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted

LINKS = 40
LINK_BYTES = 8 * 1024 * 1024
PEAK_MIB = 300
TARGET = "a 400 context_length_exceeded found without loading more than the cap; < 300 MB peak RSS for one request"
TARGET_AUTO = (
    'with truncation "auto", an answer (no 5xx) without loading more than the cap: '
    "< 300 MB peak RSS for one request (4 at once: < 4 x 300 MB)"
)


def _config(database_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "log_level": "warning",
        "models": [scripted("plain", text="ok")],
        **extra,
    }


def _build(ctx: Context, db: Database) -> tuple[str | None, dict[str, Any]]:
    """The tip's id (None if the first link failed) and how the build went."""
    text = base64.b64encode(os.urandom(LINK_BYTES * 3 // 4)).decode()
    config = _config(db.url, max_body_bytes=1 << 30)
    tip: str | None = None
    built, last = 0, ""
    started = time.monotonic()
    with running(ctx, "chain-builder", config, src=ctx.builder_src) as server:
        for link in range(LINKS):
            body: dict[str, Any] = {"model": "plain", "input": f"link {link}: {text}"}
            if tip is not None:
                body["previous_response_id"] = tip
            answer = call(server.url, "POST", "/v1/responses", body, timeout=600)
            data = answer.json()
            if answer.status != 200 or not isinstance(data, dict):
                last = f"link {link}: {answer.short()} {answer.error_field('code') or ''}"
                break
            tip, built = data["id"], link + 1
        builder_peak = server.status_kib("VmHWM")
    return tip, {
        "links": built,
        "link_bytes": LINK_BYTES,
        "build_s": round(time.monotonic() - started, 1),
        "builder_peak_mib": round(builder_peak / 1024),
        "build_stopped": last or None,
    }


def _tip_body(tip: str, truncation: str | None) -> dict[str, Any]:
    body = {"model": "plain", "input": "", "previous_response_id": tip}
    if truncation:
        body["truncation"] = truncation
    body["input"] = "x" * max(1, 120 - len(str(body).replace("'", '"')))
    return body


def _measure(ctx: Context, db: Database, tip: str, concurrent: int, truncation: str | None) -> dict[str, Any]:
    name = f"chain-tip-{concurrent}" + (f"-{truncation}" if truncation else "")
    with running(ctx, name, _config(db.url)) as server:
        start_rss = server.status_kib("VmRSS")
        answers: list[Answer] = []
        lock = threading.Lock()

        def one() -> None:
            answer = call(server.url, "POST", "/v1/responses", _tip_body(tip, truncation), timeout=600)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(concurrent)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=620)
        peak = server.status_kib("VmHWM")
        after = server.status_kib("VmRSS")
        time.sleep(5)
        later = server.status_kib("VmRSS")
    return {
        "requests": concurrent,
        "truncation": truncation,
        "request_bytes": len(str(_tip_body(tip, truncation)).replace("'", '"')),
        "statuses": sorted(a.status for a in answers),
        "codes": sorted(str(a.error_field("code")) for a in answers if a.status != 200),
        "max_seconds": round(max((a.seconds for a in answers), default=0.0), 2),
        "rss_start_mib": round(start_rss / 1024),
        "peak_mib": round(peak / 1024),
        "rss_after_mib": round(after / 1024),
        "rss_after_5s_mib": round(later / 1024),
    }


def _row(
    ctx: Context, db: Database, tip: str, build: dict[str, Any], concurrent: int, truncation: str | None
) -> Row:
    started = time.monotonic()
    got = _measure(ctx, db, tip, concurrent, truncation)
    outcome = (
        f"{build['links']} links x 8 MB; HTTP {','.join(map(str, got['statuses']))}"
        f"{' ' + ','.join(got['codes']) if got['codes'] else ''} in ≤ {got['max_seconds']} s; "
        f"peak RSS {got['peak_mib']} MiB (start {got['rss_start_mib']}); "
        f"RSS after {got['rss_after_mib']} MiB, 5 s later {got['rss_after_5s_mib']} MiB"
    )
    bounded = got["peak_mib"] < PEAK_MIB * concurrent
    if truncation:
        ok = bounded and all(0 < status < 500 for status in got["statuses"])
    else:
        ok = bounded and all(status == 400 for status in got["statuses"])
    case = f"{concurrent} request{'s' if concurrent > 1 else ''} at the tip"
    row = Row(
        probe="chain",
        case=f"{case}, truncation auto" if truncation else case,
        backend=ctx.backend,
        measured={**got, "build": build},
        outcome=outcome,
        ok=ok,
        target=TARGET_AUTO if truncation else TARGET,
    )
    row.seconds = round(time.monotonic() - started, 1)
    return row


@probe("chain", "a small request at the tip of 40 x 8 MB chained responses", per_backend=True, budget_s=280)
def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    with scratch_database(ctx.backend, ctx.scratch("chain")) as db:
        tip, build = _build(ctx, db)
        if tip is None:
            return [
                Row(
                    "chain",
                    "build",
                    ctx.backend,
                    build,
                    f"could not build the chain: {build['build_stopped']}",
                    False,
                    TARGET,
                )
            ]
        for truncation in (None, "auto"):
            for concurrent in (1, 4):
                rows.append(_row(ctx, db, tip, build, concurrent, truncation))
        rows[0].notes.append(
            f"chain built in {build['build_s']} s, builder peak RSS {build['builder_peak_mib']} MiB"
        )
    return rows
