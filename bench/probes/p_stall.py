"""Probe: does one heavy request stall the others? `/healthz` latency while it is handled.

The scenarios and the measurement are `bench/stall.py`'s (10,000 tools, the largest accepted input,
10,000 items, a 1M-token echo streamed and not): `/healthz` is polled every ~5 ms on a keep-alive
connection while one request runs, on one server with the default limits.
"""

from __future__ import annotations

import time
from typing import Any

from bench import stall
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running

P99_MS = 50.0
TARGET = (
    "while a 10,000-tool request (or the largest accepted input) is handled, "
    f"/healthz answers in < {P99_MS:.0f} ms p99"
)


def _row(ctx: Context, name: str, got: dict[str, Any]) -> Row:
    p99 = got["p99_ms"]
    status = got["status"] or "no answer"
    outcome = (
        f"HTTP {status} in {got['request_s']} s ({got['body_mb']} MB body); /healthz p50 {got['p50_ms']} ms, "
        f"p99 {p99} ms, max {got['max_ms']} ms over {got['polls']} polls"
        + (f", {got['poll_failures']} failed" if got["poll_failures"] else "")
    )
    ok = isinstance(p99, float) and p99 < P99_MS and not got["poll_failures"]
    return Row("stall", f"{name}: {stall.SCENARIOS[name]}", ctx.backend, got, outcome, ok, TARGET)


@probe("stall", "/healthz latency while heavy but valid requests are handled", budget_s=60)
def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    with (
        scratch_database(ctx.backend, ctx.scratch("stall")) as db,
        running(ctx, "stall-server", stall.config(db.url)) as server,
    ):
        for name, body in stall.bodies().items():
            started = time.monotonic()
            row = _row(ctx, name, stall.measure(server.port, name, body))
            row.seconds = round(time.monotonic() - started, 1)
            rows.append(row)
    return rows
