"""Probe: overload on PostgreSQL, open loop: is every request answered within 2 s, and is nothing stored
for a client that has gone?

`bench/overload.py`'s run: respgate on a fresh PostgreSQL database behind the mock upstream (pinned
as that script pins them), 1,000 req/s offered for 60 s with a 10 s client timeout. Counted: answers by
status and their latency, the slowest answer, rows stored vs 2xx answers received. It runs once, on
PostgreSQL, whatever `--backend` says: the issue's target is PostgreSQL's.
"""

from __future__ import annotations

import secrets
from typing import Any

from bench import overload
from bench.probes.db import postgres_available
from bench.probes.registry import Context, Row, probe

RATE = 1000.0
DURATION_S = 60.0
TARGET_ANSWERED = (
    f"PostgreSQL at {RATE:,.0f} req/s offered for {DURATION_S:.0f} s: every request answered within 2 s, "
    "served or refused"
)
TARGET_STORED = "no work stored for requests nobody received: rows stored ≤ 2xx answers"


def _ms(values: dict[str, float]) -> str:
    return "/".join(f"{values[key]:.0f}" for key in ("p50", "p99", "max") if key in values) + " ms"


def _rows(summary: dict[str, Any]) -> list[Row]:
    offered = summary["offered"]
    refused = ", ".join(
        f"{kind.removeprefix('status_')} {count} ({_ms(summary['refused_latency_ms'][kind])})"
        for kind, count in summary["refused"].items()
    )
    other = ", ".join(
        f"{kind} {count} ({_ms(summary['other_latency_ms'][kind])})"
        for kind, count in summary["unanswered_or_other"].items()
    )
    answered = (
        f"{offered:,} offered at {summary['rate']:,.0f} req/s for {summary['duration_s']:.0f} s: "
        f"served {summary['served_2xx']:,} ({_ms(summary['served_latency_ms'])} p50/p99/max)"
        f"; refused {refused or 'none'}; unanswered or other {other or 'none'}; "
        f"slowest answer {summary['slowest_answer_ms']:,.0f} ms; "
        f"{summary['answered_within_2s']:,} of {offered:,} answered within 2 s"
    )
    stored = (
        f"rows stored {summary['rows_stored']:,} {summary['rows_by_status']} vs 2xx answers "
        f"{summary['served_2xx']:,}: {max(summary['rows_without_answer'], 0):,} rows nobody received"
    )
    note = (
        f"server CPU {summary['server_cpu_s']} s ({summary['server_cpu_per_offered_ms']} ms per offered request), "
        f"busy {summary['server_busy_after_run_s']} s after the run; load average before/after "
        f"{summary['loadavg']}; listen-queue overflows (machine-wide) {summary['listen_overflows']}"
    )
    rows = [
        Row(
            "overload",
            "every request answered within 2 s",
            "postgres",
            summary,
            answered,
            bool(summary["every_answer_within_2s"]),
            TARGET_ANSWERED,
        ),
        Row(
            "overload",
            "rows stored vs answers received",
            "postgres",
            {key: summary[key] for key in ("rows_stored", "rows_by_status", "served_2xx", "rows_without_answer")},
            stored,
            summary["rows_without_answer"] <= 0,
            TARGET_STORED,
        ),
    ]
    rows[0].notes.append(note)
    return rows


def measure(ctx: Context, *, duration: float) -> list[Row]:
    """The probe at another duration (the runner uses the issue's 60 s)."""
    if why := postgres_available():
        return [Row("overload", "(not run)", "postgres", {"error": why}, why, False, TARGET_ANSWERED)]
    options = overload.Options(
        src=ctx.src,
        label="probe",
        rate=RATE,
        duration=duration,
        database="postgresql",
        database_name=f"respgate_probe_{secrets.token_hex(4)}",
        logs=ctx.scratch("overload"),
    )
    return _rows(overload.run(options)["summary"])


@probe("overload", f"{RATE:,.0f} req/s for {DURATION_S:.0f} s on PostgreSQL, open loop", budget_s=100)
def run(ctx: Context) -> list[Row]:
    return measure(ctx, duration=DURATION_S)
