"""What the numbers were measured on: CPU, cores, memory, load, software versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.procs import ROOT, pinning_enabled


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True, check=False
    )
    if done.returncode != 0:
        return None
    return done.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")


def busy_processes(limit: int = 5) -> list[str]:
    """Other processes using CPU right now: the machine is shared, so say what competed."""
    done = subprocess.run(
        ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, check=False
    )
    rows = [line.split(None, 1) for line in done.stdout.decode().splitlines()]
    return [f"{comm.strip()} {cpu}%" for cpu, comm in rows[:limit] if float(cpu) >= 5.0]


def describe(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "busy_processes_at_start": busy_processes(),
        "cpu_pinning": "gateway on core 1; load generator and mock on core 0" if pinning_enabled() else "none",
        "respgate_commit": _git_commit(),
        "versions": {
            d: _version(d)
            for d in (
                "uvicorn",
                "uvloop",
                "httptools",
                "starlette",
                "aiohttp",
                "orjson",
                "pydantic",
                "sqlalchemy",
                "aiosqlite",
                "asyncpg",
            )
        },
        **(extra or {}),
    }
