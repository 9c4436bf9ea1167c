"""Schemathesis over the Open Responses OpenAPI document, against the in-process app: any 5xx is a bug.

Run from the repository root:

    .venv/bin/python bench/fuzz.py                                  # 2,000 cases, seed 8
    .venv/bin/python bench/fuzz.py --cases 5000 --seed 1 --src /path/to/other/src

Cases are generated with a fixed seed (half valid bodies, half bodies that break the schema, for each
operation of the document), sent through httpx's ASGI transport to a gateway whose every model name
is served by the scripted model, and counted by status. The report (`--report`, Markdown) lists the
counts and, for every 5xx, the body that caused it. `tests/e2e/test_fuzz.py` runs a few hundred of
the same cases in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core import NotSet

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "data" / "openresponses-openapi.json"
KEY = "sk-fuzz-0123456789"


@dataclass(frozen=True)
class FuzzCase:
    method: str
    path: str  # below /v1, as the document's server URL says
    body: Any  # None: no body
    headers: dict[str, str]
    query: dict[str, Any]


@dataclass
class Report:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[tuple[FuzzCase, int, str]] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values())


def generate(count: int, seed: int) -> list[FuzzCase]:
    """`count` cases from the document, the same ones for the same seed and library versions."""
    schema = schemathesis.openapi.from_dict(json.loads(SPEC.read_text(encoding="utf-8")))
    operations = [result.ok() for result in schema.get_all_operations()]
    strategies = [
        operation.as_strategy(generation_mode=mode) for operation in operations for mode in GenerationMode
    ]
    cases: list[FuzzCase] = []
    per_round = max(1, count // len(strategies))
    round_ = 0
    while len(cases) < count:
        for strategy in strategies:

            @hypothesis.seed(seed * 1000 + round_)
            @settings(
                max_examples=per_round,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.generate],
            )
            @given(strategy)
            def collect(case: Any) -> None:
                body = None if isinstance(case.body, NotSet) else case.body
                cases.append(
                    FuzzCase(
                        method=case.method,
                        path=case.formatted_path,
                        body=body,
                        headers={str(k): str(v) for k, v in (case.headers or {}).items()},
                        query=dict(case.query or {}),
                    )
                )

            collect()
            round_ += 1
    return cases[:count]


async def send(http: httpx.AsyncClient, cases: list[FuzzCase], *, key: str = KEY) -> Report:
    """Send each case through `http` (an httpx.AsyncClient on the app) and count the answers."""
    report = Report()
    for case in cases:
        headers = {**case.headers, "Authorization": f"Bearer {key}"}
        content = None
        if case.body is not None:
            try:
                content = json.dumps(case.body).encode()
            except (TypeError, ValueError):
                content = repr(case.body).encode()
            headers["Content-Type"] = "application/json"
        response = await http.request(
            case.method, f"/v1{case.path}", content=content, headers=headers, params=case.query
        )
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.failures.append((case, response.status_code, response.text[:2000]))
    return report


def settings_for(database_url: str) -> dict[str, Any]:
    return {
        "api_keys": [KEY],
        "database_url": database_url,
        "models": [{"name": "fuzz", "provider": "scripted", "script": [{"text": "Fuzzed."}]}],
        "default_model": "fuzz",  # every model name the fuzzer makes up is served by it
    }


def markdown(report: Report, *, seed: int, source: str) -> str:
    lines = [
        "# Fuzz report",
        "",
        f"Source: `{source}`; seed {seed}; {report.cases} cases over {SPEC.name}.",
        "",
        "| status | cases |",
        "|---|---|",
        *[f"| {status} | {count} |" for status, count in sorted(report.statuses.items())],
        "",
        f"Server errors (5xx): {len(report.failures)}",
    ]
    for case, status, answer in report.failures:
        lines += [
            "",
            f"## {status} on {case.method} {case.path}",
            "",
            "```json",
            json.dumps(case.body)[:4000],
            "```",
        ]
        lines += ["", "Answer:", "", "```", answer, "```"]
    return "\n".join(lines) + "\n"


async def _run(count: int, seed: int) -> Report:
    # Imported here, after `--src` is on the path, so that any source tree can be fuzzed.
    from respgate.config import Settings
    from respgate.http.app import Gateway, create_app
    from respgate.providers.registry import build_provider

    cases = generate(count, seed)
    with tempfile.TemporaryDirectory(prefix="respgate-fuzz-") as scratch:
        settings = Settings.model_validate(settings_for(f"sqlite+aiosqlite:///{Path(scratch) / 'fuzz.sqlite3'}"))
        gateway = await Gateway.open(settings, build_provider=build_provider)
        try:
            transport = httpx.ASGITransport(app=create_app(gateway), raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://respgate.fuzz") as http:
                return await send(http, cases)
        finally:
            await gateway.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="source tree of respgate to fuzz")
    parser.add_argument("--report", type=Path, default=ROOT / "bench" / "results" / "fuzz.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.src.resolve()))
    report = asyncio.run(_run(args.cases, args.seed))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown(report, seed=args.seed, source=str(args.src)), encoding="utf-8")
    print(f"{report.cases} cases: {dict(sorted(report.statuses.items()))}; 5xx: {len(report.failures)}")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
