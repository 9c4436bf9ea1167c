"""Probe 4: hand-made hostile bodies (bench/probes/bodies.py) against the four endpoints that take a body.

Counted: 5xx answers (and no answers), answers that miss their expectation (a spec-valid body refused,
an invalid one accepted), tracebacks in the server log, user content in the log, whether a 405 carries
`Allow`, and whether the server still answers `/healthz` at the end.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from bench.probes.bodies import MARK, Case, cases
from bench.probes.client import call
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted

# A log record at ERROR level: respgate's own format, or uvicorn's.
ERROR_RECORD = re.compile(r"^(\S+ \S+ ERROR |ERROR:)", re.MULTILINE)
TARGET = "0 server errors: every odd body is an OpenAI-shaped 400 naming the param; tool_choice null accepted"


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


@probe("odd_input", "hostile bodies: odd item types, deep nesting, odd numbers", per_backend=False, budget_s=60)
def run(ctx: Context) -> list[Row]:
    config = {"database_url": "", "log_level": "info", "models": [scripted("plain", text="ok")]}
    with scratch_database(ctx.backend, ctx.scratch("odd")) as db:
        config["database_url"] = db.url
        with running(ctx, "odd-server", config) as server:
            created = call(server.url, "POST", "/v1/conversations", {}).json()
            conversation_id = created["id"] if isinstance(created, dict) and "id" in created else "conv_missing"
            log_start = server.log_size()
            errors: list[dict[str, Any]] = []
            missed: list[dict[str, Any]] = []
            per_endpoint: Counter[str] = Counter()
            all_cases = cases(conversation_id)
            for case in all_cases:
                answer = call(server.url, "POST", _path(case, conversation_id), case.body, timeout=60)
                per_endpoint[case.endpoint] += 1
                if answer.status == 0 or answer.status >= 500:
                    errors.append({"endpoint": case.endpoint, "case": case.name, "status": answer.status})
                elif not _met(case.expect, answer.status):
                    missed.append(
                        {
                            "endpoint": case.endpoint,
                            "case": case.name,
                            "status": answer.status,
                            "expected": case.expect,
                            "message": str(answer.error_field("message") or "")[:120],
                        }
                    )
            not_allowed = call(server.url, "GET", "/v1/responses")
            alive = call(server.url, "GET", "/healthz", timeout=10).status == 200
            log = server.log_since(log_start)
    by_endpoint = Counter(e["endpoint"] for e in errors)
    tracebacks = log.count("Traceback (most recent call last)")
    records = len(ERROR_RECORD.findall(log))
    measured = {
        "cases": len(all_cases),
        "cases_per_endpoint": dict(per_endpoint),
        "server_errors": len(errors),
        "server_errors_per_endpoint": dict(by_endpoint),
        "server_error_cases": errors,
        "missed_expectation": missed,
        "tracebacks_logged": tracebacks,
        "error_records_logged": records,
        "user_content_in_log": MARK in log,
        "log_bytes": len(log),
        "405_status": not_allowed.status,
        "405_allow": not_allowed.headers.get("allow"),
        "healthz_after": alive,
    }
    split = ", ".join(f"{name} {count}" for name, count in sorted(by_endpoint.items()))
    outcome = (
        f"5xx/no answer: {len(errors)} of {len(all_cases)} ({split or 'none'}); "
        f"other unexpected: {len(missed)}; error records logged {records} ({tracebacks} tracebacks); "
        f"user content in log: {'yes' if MARK in log else 'no'}; "
        f"405 Allow: {not_allowed.headers.get('allow') or 'missing'}"
    )
    ok = (
        not errors
        and not missed
        and records == len(errors)
        and bool(not_allowed.headers.get("allow"))
        and MARK not in log
        and alive
    )
    row = Row("odd_input", "all endpoints", ctx.backend, measured, outcome, ok, TARGET)
    kinds = Counter(e["case"].split(",")[0] for e in errors)
    row.notes.append("5xx by body: " + "; ".join(f"{name} x{n}" for name, n in kinds.most_common()))
    if missed:
        row.notes.append(
            "unexpected: " + "; ".join(f"{m['endpoint']} {m['case']} → {m['status']}" for m in missed)
        )
    return [row]
