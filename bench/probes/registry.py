"""The probe registry: what a probe is, what it returns, and how the runner finds it.

A probe is a function `(ctx) -> list[Row]` registered under a short name. Probes marked `per_backend`
run once for each database backend the runner was asked for; the others run once (on the first).
Other scripts become probes by registering a function here (see `bench/probes/__main__.py`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Backend = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Context:
    """What every probe gets: the source tree under test, the backend, and a scratch directory."""

    src: Path
    backend: Backend
    work: Path
    python: str
    # The tree that prepares data a fixed server might refuse to create (the chain probe's 40 links).
    builder_src: Path | None = None

    def scratch(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Row:
    """One line of the report: the measured numbers, a one-line outcome and the verdict against the target."""

    probe: str
    case: str
    backend: str
    measured: dict[str, Any]
    outcome: str
    ok: bool
    target: str
    loadavg: tuple[float, float, float] = field(default_factory=os.getloadavg)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "OK" if self.ok else "FAIL"


ProbeFn = Callable[[Context], list[Row]]


@dataclass(frozen=True)
class Probe:
    name: str
    title: str
    run: ProbeFn
    per_backend: bool
    # Rough wall-clock time of one run, so that a caller can pick what fits.
    budget_s: int


PROBES: dict[str, Probe] = {}


def probe(name: str, title: str, *, per_backend: bool = False, budget_s: int = 60) -> Callable[[ProbeFn], ProbeFn]:
    def register(fn: ProbeFn) -> ProbeFn:
        if name in PROBES:
            raise ValueError(f"probe {name!r} registered twice")
        PROBES[name] = Probe(name=name, title=title, run=fn, per_backend=per_backend, budget_s=budget_s)
        return fn

    return register


def timed(fn: ProbeFn, ctx: Context) -> list[Row]:
    """Run a probe; rows that did not time themselves get the probe's wall time."""
    started = time.monotonic()
    rows = fn(ctx)
    elapsed = round(time.monotonic() - started, 1)
    for row in rows:
        row.seconds = row.seconds or elapsed
    return rows
