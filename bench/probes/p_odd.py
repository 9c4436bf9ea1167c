"""Probe 4: hand-made hostile bodies (bench/probes/bodies.py) against the four endpoints that take a body.

Rows: odd item and content-part types; nesting at 254, 500, 1023 and 1024 levels; odd values (NaN,
huge numbers, duplicate keys, `tool_choice: null`, odd bodies); and what the server logged (ERROR records
against 5xx answers, user text in the log) plus whether a 405 carries `Allow`. A 5xx or no answer is a
server error; a spec-valid body refused, or a body of the wrong type accepted, misses its expectation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from bench.probes.bodies import MARK, Case, cases
from bench.probes.client import call
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted

# A log record at ERROR level: respgate's own format, or uvicorn's.
ERROR_RECORD = re.compile(r"^(\S+ \S+ ERROR |ERROR:)", re.MULTILINE)
TARGET = "0 server errors: an OpenAI-shaped 400 naming the param; spec-valid values (tool_choice: null) accepted"
TARGET_LOG = "every 5xx logged exactly once with its traceback; no user content in logs; 405 carries Allow"
GROUPS = {
    "types": "item/content-part type of every JSON type",
    "nesting": "nesting 254/500/1023/1024 deep",
    "values": "NaN, huge numbers, duplicate keys, tool_choice null, odd bodies",
}


def _path(case: Case, conversation_id: str) -> str:
    return {
        "responses": "/v1/responses",
        "input_tokens": "/v1/responses/input_tokens",
        "conversations": "/v1/conversations",
        "items": f"/v1/conversations/{conversation_id}/items",
    }[case.endpoint]


def _met(expect: str, status: int) -> bool:
    if expect == "2xx":
        return 200 <= status < 300
    if expect == "4xx":
        return 400 <= status < 500
    return 0 < status < 500


def _errors_by_shape(errors: list[tuple[Case, int]]) -> str:
    """'tool parameters (schema) at 254,500 on responses,input_tokens; …'."""
    depths: dict[str, set[str]] = defaultdict(set)
    endpoints: dict[str, set[str]] = defaultdict(set)
    for case, _status in errors:
        depths[case.shape].update([case.name.split(", depth ")[1]] if ", depth " in case.name else [])
        endpoints[case.shape].add(case.endpoint)
    parts = []
    for shape in depths:
        at = f" at {','.join(sorted(depths[shape], key=int))}" if depths[shape] else ""
        parts.append(f"{shape}{at} ({', '.join(sorted(endpoints[shape]))})")
    return "; ".join(parts)


def _group_row(ctx: Context, group: str, results: list[tuple[Case, int, str]]) -> Row:
    mine = [(case, status, message) for case, status, message in results if case.group == group]
    errors = [(case, status) for case, status, _ in mine if status == 0 or status >= 500]
    missed = [
        (case, status, message)
        for case, status, message in mine
        if 0 < status < 500 and not _met(case.expect, status)
    ]
    per_endpoint: dict[str, int] = defaultdict(int)
    for case, _ in errors:
        per_endpoint[case.endpoint] += 1
    split = ", ".join(f"{name} {count}" for name, count in sorted(per_endpoint.items()))
    outcome = f"5xx/no answer: {len(errors)} of {len(mine)}{f' ({split})' if split else ''}"
    if missed:
        outcome += "; unexpected: " + "; ".join(f"{c.endpoint} {c.name} → {s}" for c, s, _ in missed)
    row = Row(
        "odd_input",
        GROUPS[group],
        ctx.backend,
        {
            "cases": len(mine),
            "server_errors": [{"endpoint": c.endpoint, "case": c.name, "status": s} for c, s in errors],
            "missed_expectation": [
                {"endpoint": c.endpoint, "case": c.name, "status": s, "expected": c.expect, "message": m}
                for c, s, m in missed
            ],
        },
        outcome,
        not errors and not missed,
        TARGET,
    )
    if errors:
        row.notes.append("5xx for: " + _errors_by_shape(errors))
    return row


@probe("odd_input", "hostile bodies: odd item types, deep nesting, odd values", per_backend=False, budget_s=60)
def run(ctx: Context) -> list[Row]:
    config: dict[str, Any] = {"log_level": "info", "models": [scripted("plain", text="ok")]}
    with (
        scratch_database(ctx.backend, ctx.scratch("odd")) as db,
        running(ctx, "odd-server", {**config, "database_url": db.url}) as server,
    ):
        created = call(server.url, "POST", "/v1/conversations", {}).json()
        conversation_id = created["id"] if isinstance(created, dict) and "id" in created else "conv_missing"
        log_start = server.log_size()
        results: list[tuple[Case, int, str]] = []
        for case in cases(conversation_id):
            answer = call(server.url, "POST", _path(case, conversation_id), case.body, timeout=60)
            results.append((case, answer.status, str(answer.error_field("message") or "")[:120]))
        not_allowed = call(server.url, "GET", "/v1/responses")
        alive = call(server.url, "GET", "/healthz", timeout=10).status == 200
        log = server.log_since(log_start)
    rows = [_group_row(ctx, group, results) for group in GROUPS]
    server_errors = sum(1 for _, status, _ in results if status == 0 or status >= 500)
    records = len(ERROR_RECORD.findall(log))
    tracebacks = log.count("Traceback (most recent call last)")
    allow = not_allowed.headers.get("allow")
    measured = {
        "server_errors": server_errors,
        "error_records_logged": records,
        "tracebacks_logged": tracebacks,
        "user_content_in_log": MARK in log,
        "log_bytes": len(log),
        "405_status": not_allowed.status,
        "405_allow": allow,
        "healthz_after": alive,
    }
    outcome = (
        f"{server_errors} 5xx → {records} ERROR records, {tracebacks} tracebacks; "
        f"user content in log: {'yes' if MARK in log else 'no'}; GET /v1/responses → {not_allowed.status}, "
        f"Allow {allow or 'missing'}; /healthz after: {'ok' if alive else 'down'}"
    )
    ok = records == server_errors and tracebacks == server_errors and MARK not in log and bool(allow) and alive
    rows.append(Row("odd_input", "what was logged; 405", ctx.backend, measured, outcome, ok, TARGET_LOG))
    return rows
