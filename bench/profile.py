"""Sample respgate with py-spy while the open-loop generator drives one scenario; summarise hot spots.

Writes bench/results/profile/<scenario>.txt (collapsed stacks, for flamegraph tools or speedscope) and a
summary: the share of samples whose innermost frame is in a function ("self"), and the share of
samples passing through a function ("inclusive"), for the functions that matter.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import gateways, procs, scenarios
from bench.procs import DRIVER_CPUS, RESULTS, ROOT, WORK, pinning_enabled

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
PROFILE_DIR = RESULTS / "profile"


def _scenarios(rg_url: str) -> dict[str, tuple[str, dict[str, Any], float]]:
    base = scenarios.RESP_BODY
    return {
        "passthrough-store": (f"{rg_url}/v1/responses", {**base, "model": "bench-resp"}, 200.0),
        "passthrough-nostore": (f"{rg_url}/v1/responses", {**base, "model": "bench-resp", "store": False}, 500.0),
        "bridge-nostore": (f"{rg_url}/v1/responses", {**base, "model": "bench-cc", "store": False}, 500.0),
        "bridge-stream500-nostore": (
            f"{rg_url}/v1/responses",
            {**base, "model": "bench-cc-500", "stream": True, "store": False},
            20.0,
        ),
    }


def summarise(collapsed: Path, top: int = 25) -> dict[str, Any]:
    self_count: collections.Counter[str] = collections.Counter()
    incl_count: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        self_count[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            incl_count[frame] += count
    pct = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    return {
        "samples": total,
        "self": [(f, pct(c)) for f, c in self_count.most_common(top)],
        "inclusive_respgate": [(f, pct(c)) for f, c in incl_count.most_common(400) if "respgate" in f][:top],
        "inclusive_all": [(f, pct(c)) for f, c in incl_count.most_common(top * 2)],
    }


def _short(frame: str) -> str:
    # py-spy frames look like "func (path/to/module.py:123)"; keep function and module, drop the line.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def run(*, db: str, duration: float = 12.0) -> dict[str, Any]:
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        return {"skipped": "py-spy is not installed (pip install py-spy into .venv)"}
    spy = str(PY_SPY if PY_SPY.exists() else shutil.which("py-spy"))
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"scenarios": {}}
    with procs.mock() as mock:
        for name, (url, body, rate) in _scenarios("http://127.0.0.1:{port}").items():
            with gateways.respgate(
                mock.url, database_url=gateways.sqlite_url(WORK / "profile.sqlite3"), name="respgate-profile"
            ) as rg:
                target = url.format(port=rg.port)
                dest = PROFILE_DIR / f"{name}.txt"
                # Record for the whole load run; --nonblocking keeps py-spy from pausing the server.
                spy_proc = subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(rg.proc.pid),
                        "--format",
                        "raw",
                        "--output",
                        str(dest),
                        "--duration",
                        str(int(duration + 1)),
                        "--rate",
                        "200",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    # With the load generator, off the gateway's core so sampling does not slow it.
                    preexec_fn=(lambda: os.sched_setaffinity(0, DRIVER_CPUS)) if pinning_enabled() else None,
                )
                time.sleep(0.5)
                res = procs.load(target, body, rate=rate, duration=duration, warmup=0.5, expect="completed")
                _, err = spy_proc.communicate(timeout=60)
                if not dest.exists():
                    out["scenarios"][name] = {"error": err.decode()[-500:]}
                    continue
                summary = summarise(dest)
                summary["load"] = {k: res[k] for k in ("rate", "errors", "latency_ms")}
                out["scenarios"][name] = summary
                procs.log(f"profile {name}: {summary['samples']} samples; top self {summary['self'][:5]}")
    out["summary_md"] = summary_md(out)
    return out


def summary_md(out: dict[str, Any]) -> str:
    lines = []
    for name, s in out["scenarios"].items():
        if "error" in s:
            lines.append(f"- {name}: py-spy failed: {s['error']}")
            continue
        lat = s["load"]["latency_ms"]
        lines += [
            f"### {name} ({s['load']['rate']:.0f} req/s, p50 {lat.get('p50', 0):.2f} ms, "
            f"p99 {lat.get('p99', 0):.2f} ms, {s['samples']} samples)",
            "",
            "| self % | function | | inclusive % | respgate function |",
            "|---|---|---|---|---|",
        ]
        for (f1, p1), (f2, p2) in zip(s["self"][:15], s["inclusive_respgate"][:15], strict=False):
            lines.append(f"| {p1} | `{f1}` | | {p2} | `{f2}` |")
        lines.append("")
    return "\n".join(lines)
