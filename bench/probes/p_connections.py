"""Probe: can clients hoard the server's connections? Slow clients, 20,000 idle connections, header floods.

The measurements are `bench/connections.py`'s, each on a fresh server with every server setting at its
default: how long a slow-header client (a byte every 0.5 s), a silent connection and a body stalled
after 10 of 100 bytes stay connected (watched for 40 s); whether a new client is served while 20,000
idle connections are held; the server's RSS before and after 400 MiB of unfinished headers, as 1 MiB
heads and as heads just under the 32 KiB header limit.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bench import connections
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running

SLOW_LIMIT_S = 40.0
IDLE = 20_000
FLOOD_MIB = 400
# respgate's defaults (`server.header_timeout`, `server.body_timeout`); a second of slack for the timer.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
SLACK_S = 1.0
# What unfinished headers may add to the server's peak RSS: the default cap on pending header bytes
# (`server.max_pending_header_bytes`, 64 MiB) and as much again for the connections that hold them.
FLOOD_GROWTH_MIB = 128

TARGETS = {
    "slow_header": f"a slow-header client is dropped within the header timeout (default {HEADER_TIMEOUT_S:g} s)",
    "silent": f"a silent connection is dropped within the header timeout (default {HEADER_TIMEOUT_S:g} s)",
    "stalled_body": f"a stalled body is dropped within the body timeout (default {BODY_TIMEOUT_S:g} s)",
    "idle": f"{IDLE:,} idle connections do not stop a new client from being served",
    "flood": (
        f"a header size limit: {FLOOD_MIB} MiB of unfinished headers raise peak RSS by < {FLOOD_GROWTH_MIB} MiB "
        "(the issue saw +800 MB)"
    ),
}


def _verdict(key: str, results: dict[str, Any]) -> bool:
    if key in connections.SLOW_CLIENTS:
        closed = results["slow"][key]["closed_after_s"]
        timeout = BODY_TIMEOUT_S if key == "stalled_body" else HEADER_TIMEOUT_S
        return closed is not None and closed <= timeout + SLACK_S
    if key == "new_client":
        return bool(results["idle"]["new_client"].get("status") == 200)
    flood = results[key]
    return bool(flood["server_after"]["VmHWM"] - flood["server_before"]["VmRSS"] < FLOOD_GROWTH_MIB)


def _rows(ctx: Context, results: dict[str, Any]) -> list[Row]:
    found = {key: (label, outcome) for key, label, outcome in connections.lines(results)}
    rows = []
    for key in connections.SLOW_CLIENTS:
        label, outcome = found[key]
        rows.append(
            Row(
                "connections",
                label,
                ctx.backend,
                results["slow"][key],
                outcome,
                _verdict(key, results),
                TARGETS[key],
            )
        )
    (idle_label, idle_outcome), (_, client_outcome) = found["idle"], found["new_client"]
    rows.append(
        Row(
            "connections",
            f"{idle_label}, then a new client",
            ctx.backend,
            results["idle"],
            f"{idle_outcome}; new client: {client_outcome}",
            _verdict("new_client", results),
            TARGETS["idle"],
        )
    )
    for key in connections.FLOODS:
        label, outcome = found[key]
        rows.append(
            Row("connections", label, ctx.backend, results[key], outcome, _verdict(key, results), TARGETS["flood"])
        )
    return rows


@probe("connections", "slow clients, 20,000 idle connections, 400 MiB of unfinished headers", budget_s=90)
def run(ctx: Context) -> list[Row]:
    with scratch_database(ctx.backend, ctx.scratch("connections")) as db:
        serve = partial(running, ctx, config=connections.config(db.url))
        results = connections.measure(serve, slow_limit=SLOW_LIMIT_S, idle=IDLE, flood_mib=FLOOD_MIB)
    return _rows(ctx, results)
