"""`python -m bench.probes [--src DIR] [--only NAME,...] [--backend sqlite|postgres|both] [--label L] [--out STEM]`.

Runs the registered probes against `respgate serve` started from the source tree `--src` (default: this
checkout's `src/`), and writes `bench/results/probes-<label>.{md,json}` (or `--out`): one row per probe
case with the measured numbers, the verdict against the issue's target, the load average, the machine
description and this command. Server logs and configs stay in the scratch directory (`--work`; a
temporary one is removed only when every row passed).

Adding a probe: write a module with a function decorated by `@probe(...)` (bench/probes/registry.py)
and add the module to `PROBE_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.probes.db import postgres_available
from bench.probes.registry import PROBES, Backend, Context, Row, timed
from bench.probes.report import write

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PROBE_MODULES = (
    "bench.probes.p_ref",
    "bench.probes.p_background",
    "bench.probes.p_chain",
    "bench.probes.p_odd",
    "bench.probes.p_store_failure",
    "bench.probes.p_upstream",
    "bench.probes.p_storage",
    "bench.probes.p_crash_writes",
    "bench.probes.p_stall",
    "bench.probes.p_connections",
    "bench.probes.p_overload",
)


def _load() -> None:
    for module in PROBE_MODULES:
        importlib.import_module(module)


def _commit(src: Path) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, check=False
    )
    if done.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True, check=False
    )
    return done.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="source tree holding the respgate package")
    parser.add_argument(
        "--builder-src",
        type=Path,
        default=None,
        help="source tree that builds the chain probe's 40 x 8 MB links (default: --src, with max_body_bytes raised)",
    )
    parser.add_argument("--only", default="", help="comma-separated probe names (default: all)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--label", default="", help="report name (default: the source tree's commit)")
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=1, help="run the selection N times (a soak); rows get #i")
    parser.add_argument("--list", action="store_true", help="list the probes and exit")
    return parser.parse_args()


def _failed_row(name: str, backend: str, exc: BaseException) -> Row:
    return Row(
        probe=name,
        case="(probe error)",
        backend=backend,
        measured={"error": repr(exc), "traceback": traceback.format_exc()[-3000:]},
        outcome=f"the probe itself failed: {exc!r}",
        ok=False,
        target="",
    )


def _exit_on_term(signum: int, _frame: object) -> None:
    # Unwind (finally blocks stop the servers) instead of dying with children left behind.
    raise SystemExit(128 + signum)


def _run_one(name: str, backend: Backend, work: Path, src: Path, builder_src: Path | None) -> list[Row]:
    item = PROBES[name]
    ctx = Context(
        src=src,
        backend=backend,
        work=work,
        python=sys.executable,
        builder_src=builder_src.resolve() if builder_src else None,
    )
    print(f"[probes {time.strftime('%H:%M:%S')}] {name} on {backend} (~{item.budget_s} s)", flush=True)
    try:
        rows = timed(item.run, ctx)
    except Exception as exc:
        rows = [_failed_row(name, backend, exc)]
    for row in rows:
        print(f"    {row.verdict:4} {row.case}: {row.outcome}", flush=True)
    return rows


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_term)
    args = _args()
    _load()
    if args.list:
        for item in PROBES.values():
            scope = "per backend" if item.per_backend else "once"
            print(f"{item.name:16} ~{item.budget_s:4d} s {scope:12} {item.title}")
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(PROBES)
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        sys.exit(f"unknown probe(s): {', '.join(unknown)}; known: {', '.join(PROBES)}")
    backends: list[Backend] = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and (why := postgres_available()):
        sys.exit(why)
    src = args.src.resolve()
    if not (src / "respgate" / "__init__.py").exists():
        sys.exit(f"{src} does not hold the respgate package")
    label = args.label or f"src-{_commit(src) or 'unknown'}"
    stem = args.out or RESULTS / f"probes-{label}"
    work = args.work or Path(tempfile.mkdtemp(prefix=f"respgate-probes-{label}-"))
    meta: dict[str, Any] = {
        "label": label,
        "command": shlex.join([sys.executable, "-m", "bench.probes", *sys.argv[1:]]),
        "src": str(src),
        "src_commit": _commit(src),
        "builder_src": str(args.builder_src.resolve()) if args.builder_src else None,
        "scratch": str(work),
        "machine": describe(
            {"cpu_pinning": "none", "respgate_commit": _commit(src), "probes_commit": _commit(ROOT / "bench")}
        ),
    }
    rows: list[Row] = []
    for iteration in range(1, args.repeat + 1):
        for name in names:
            for backend in backends if PROBES[name].per_backend else backends[:1]:
                got = _run_one(name, backend, work / f"{iteration}-{name}-{backend}", src, args.builder_src)
                for row in got:
                    if args.repeat > 1:
                        row.case = f"{row.case} #{iteration}"
                rows += got
                write(rows, {**meta, "loadavg_at_end": os.getloadavg()}, stem)
    md, js = write(rows, {**meta, "loadavg_at_end": os.getloadavg()}, stem)
    print(f"wrote {md} and {js}")
    if args.work is None and all(row.ok for row in rows):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"server logs and configs: {work}")


if __name__ == "__main__":
    main()
