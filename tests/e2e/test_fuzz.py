"""A fixed-seed schemathesis run over the Open Responses document: no case is a server error.

`bench/fuzz.py` runs the same generator over 2,000 cases and writes a report.
"""

from __future__ import annotations

from support.harness import KEY_A, scripted

from bench.fuzz import generate, send

CASES = 200
SEED = 8


async def test_fuzzed_requests_are_never_server_errors(make_app) -> None:
    app = await make_app([scripted("fuzz", {"text": "Fuzzed."})], default_model="fuzz")
    report = await send(app.http, generate(CASES, SEED), key=KEY_A)
    assert report.cases == CASES
    assert report.failures == [], report.failures[:3]
    assert sum(count for status, count in report.statuses.items() if status < 500) == CASES
