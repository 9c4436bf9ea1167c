"""Overload: respgate on PostgreSQL at more requests per second than it can serve, open loop.

What it shows: whether every request is answered quickly (served, or refused with a 503/429 and
`Retry-After`) instead of queueing until the client gives up, and whether work is stored for
requests whose client had already gone (rows written vs 2xx answers received).

    python -m bench.overload                                   # this tree's src/, 1,000 req/s for 60 s
    python -m bench.overload --src /other/tree/src --label before --duration 20
    python -m bench.overload --setting overload.max_generations=64 --upstream-ms 50

The gateway runs `python -m respgate serve` with PYTHONPATH=<src>, so any source tree can be measured
(its own config keys permitting: `--setting` adds keys to the config file as they are). It is pinned
to core 1, the load generator and the mock upstream to core 0 (BENCH_NO_PIN=1 turns pinning off);
PostgreSQL runs where the kernel puts it. The database `respgate_overload` is created fresh and
dropped at the end (`--database sqlite`: a fresh file instead). Output: a summary on stderr and
bench/results/overload-<label>.json. `bench/probes/p_overload.py` runs the same `run` as the `overload`
probe (PostgreSQL, 1,000 req/s for 60 s), with verdicts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import gateways, machine, procs
from bench.procs import GATEWAY_CPUS, LOGS, RESULTS, ROOT, WORK

DATABASE = "respgate_overload"
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc"]


def _psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run([*PSQL, sql, database], capture_output=True, check=True, timeout=60)
    return done.stdout.decode().strip()


class Database:
    """The run's store: a fresh PostgreSQL database (the default) or SQLite file, and its rows by status."""

    def __init__(self, backend: str, name: str = DATABASE) -> None:
        self.backend = backend
        self.name = name
        self._path = WORK / f"{name}.sqlite3"
        if backend == "postgresql":
            self.url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        else:
            self.url = gateways.sqlite_url(self._path)

    def reset(self) -> None:
        if self.backend == "postgresql":
            self.drop()
            _psql(f"CREATE DATABASE {self.name}")
        else:
            gateways.sqlite_url(self._path)

    def drop(self) -> None:
        if self.backend == "postgresql":
            _psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        else:
            gateways.sqlite_url(self._path)

    def rows(self) -> dict[str, int]:
        """Stored responses by status (the table may not exist yet if the server never wrote)."""
        query = "SELECT status, count(*) FROM responses GROUP BY status"
        if self.backend == "sqlite":
            with contextlib.closing(sqlite3.connect(self._path)) as db:
                return {status: int(n) for status, n in db.execute(query)}
        try:
            out = _psql(query, self.name)
        except subprocess.CalledProcessError:
            return {}
        return {status: int(n) for status, n in (line.split("|") for line in out.splitlines() if line)}


@dataclass(frozen=True)
class Options:
    """One overload run; the defaults are the issue's (PostgreSQL, 1,000 req/s for 60 s)."""

    src: Path = ROOT / "src"
    label: str = "after"
    rate: float = 1000.0
    duration: float = 60.0
    timeout: float = 10.0  # the client's, per request
    max_conns: int = 4096
    upstream_ms: int = 0  # the mock upstream's delay per answer
    stream: bool = False
    database: str = "postgresql"
    database_name: str = DATABASE
    no_store: bool = False
    settings: tuple[str, ...] = ()  # config `key=value` (dotted; YAML value)
    logs: Path = LOGS  # where the server's config and the processes' logs go


def _listen_overflows() -> int:
    """Connections the kernel refused because a listen queue was full (machine-wide: other processes count too)."""
    lines = [
        line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")
    ]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("ListenOverflows", 0)) if len(lines) >= 2 else 0


def _setting(text: str) -> tuple[list[str], Any]:
    key, _, value = text.partition("=")
    return key.split("."), yaml.safe_load(value)


def _config(mock_url: str, database_url: str, upstream_ms: int, settings: list[str]) -> dict[str, Any]:
    prefix = f"/d{upstream_ms}" if upstream_ms else ""
    config: dict[str, Any] = {
        "api_keys": [],
        "database_url": database_url,
        "log_level": "warning",
        "models": [
            {
                "name": "bench-resp",
                "provider": "openai_responses",
                "base_url": f"{mock_url}{prefix}/v1",
                "api_key": "x",
            }
        ],
    }
    for text in settings:
        path, value = _setting(text)
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return config


def _wait_idle(svc: procs.Service, *, limit: float = 120.0) -> float:
    """Wait until the gateway stops using CPU (its backlog is done); the seconds it took."""
    start = time.monotonic()
    last = svc.cpu_seconds()
    while time.monotonic() - start < limit:
        time.sleep(1.0)
        now = svc.cpu_seconds()
        if now - last < 0.03:
            break
        last = now
    return time.monotonic() - start


def _summary(load: dict[str, Any], rows: dict[str, int], cpu: float, options: Options) -> dict[str, Any]:
    served = load["completed"]
    kinds: dict[str, int] = load["error_kinds"]
    refused = {kind: n for kind, n in kinds.items() if kind in ("status_429", "status_503")}
    lost = {kind: n for kind, n in kinds.items() if kind not in refused}
    latencies = load["error_latency_ms"]
    slowest = max(
        [load["latency_ms"].get("max", 0.0)] + [latencies[kind].get("max", 0.0) for kind in kinds], default=0.0
    )
    samples = load.get("samples_ms", [])
    stored = sum(rows.values())
    return {
        "offered": load["scheduled"],
        "served_2xx": served,
        "refused": refused,
        "unanswered_or_other": lost,
        "answered_within_2s": sum(1 for ms in samples if ms <= 2000)
        + sum(1 for kind in refused for ms in load["error_samples_ms"][kind] if ms <= 2000),
        "every_answer_within_2s": not lost and slowest <= 2000.0,
        "slowest_answer_ms": slowest,
        "served_latency_ms": load["latency_ms"],
        "refused_latency_ms": {kind: latencies[kind] for kind in refused},
        "other_latency_ms": {kind: latencies[kind] for kind in lost},
        "rows_stored": stored,
        "rows_by_status": rows,
        "rows_without_answer": stored - served,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_per_offered_ms": round(1e3 * cpu / max(load["scheduled"], 1), 3),
        "loadgen_lag_ms": load["lag_ms"],
        "database": options.database,
        "rate": options.rate,
        "duration_s": options.duration,
        "client_timeout_s": options.timeout,
    }


def _print(summary: dict[str, Any], label: str) -> None:
    def pcts(values: dict[str, float]) -> str:
        return " ".join(f"{key} {values[key]:.0f}" for key in ("p50", "p90", "p99", "max") if key in values)

    out = [
        f"== overload [{label}]: {summary['rate']:.0f} req/s for {summary['duration_s']:.0f} s on {summary['database']}",
        f"offered {summary['offered']}, served {summary['served_2xx']}, refused {summary['refused']}, "
        f"unanswered/other {summary['unanswered_or_other']}",
        f"served ms: {pcts(summary['served_latency_ms'])}",
        *(f"{kind} ms: {pcts(values)}" for kind, values in summary["refused_latency_ms"].items()),
        *(f"{kind} ms: {pcts(values)}" for kind, values in summary["other_latency_ms"].items()),
        f"every answer within 2 s: {summary['every_answer_within_2s']} (slowest {summary['slowest_answer_ms']:.0f} ms; "
        f"{summary['answered_within_2s']} of {summary['offered']} answered within 2 s)",
        f"rows stored {summary['rows_stored']} {summary['rows_by_status']} vs 2xx answers {summary['served_2xx']}: "
        f"{summary['rows_without_answer']} rows nobody received",
        f"server CPU {summary['server_cpu_s']} s ({summary['server_cpu_per_offered_ms']} ms per offered request); "
        f"load average {summary['loadavg']}; listen-queue overflows (machine-wide) {summary['listen_overflows']}",
    ]
    print("\n".join(out), file=sys.stderr, flush=True)


def run(options: Options) -> dict[str, Any]:
    """One run: the summary (what `_print` shows), the machine, and the load generator's own report."""
    src = options.src.resolve()
    database = Database(options.database, options.database_name)
    database.reset()
    try:
        with procs.mock(logs=options.logs) as mock:
            options.logs.mkdir(parents=True, exist_ok=True)
            cfg = options.logs / f"overload-{options.label}.yaml"
            config = _config(mock.url, database.url, options.upstream_ms, list(options.settings))
            cfg.write_text(yaml.safe_dump(config, sort_keys=False))
            port = procs.free_port()
            cmd = [sys.executable, "-m", "respgate", "serve", "--config", str(cfg), "--port", str(port)]
            env = {"PYTHONPATH": str(src)}
            name = f"overload-{options.label}"
            with procs.service(name, cmd, port=port, cpus=GATEWAY_CPUS, env=env, logs=options.logs) as svc:
                body: dict[str, Any] = {"model": "bench-resp", "input": "Say hello."}
                if options.stream:
                    body["stream"] = True
                if options.no_store:
                    body["store"] = False
                url = f"{svc.url}/v1/responses"
                # Warm the server up (imports, pools, JIT-free but cache-warm paths) at a rate it serves.
                procs.load(url, body, rate=50, duration=2, warmup=0, timeout=options.timeout)
                _wait_idle(svc)
                before_rows = sum(database.rows().values())
                loadavg_before = os.getloadavg()
                cpu0 = svc.cpu_seconds()
                overflows = _listen_overflows()
                load = procs.load(
                    url,
                    body,
                    rate=options.rate,
                    duration=options.duration,
                    warmup=0,
                    timeout=options.timeout,
                    max_conns=options.max_conns,
                )
                overflows = _listen_overflows() - overflows
                drain = _wait_idle(svc)
                cpu = svc.cpu_seconds() - cpu0
                rss = svc.rss_mib()
                rows = database.rows()
                # Rows from the warm-up are not part of the run (they are all completed).
                if "completed" in rows:
                    rows["completed"] -= before_rows
    finally:
        database.drop()
    summary = _summary(load, rows, cpu, options)
    summary["server_busy_after_run_s"] = round(drain, 1)
    summary["listen_overflows"] = overflows
    summary["server_rss_mib"] = round(rss, 1)
    summary["loadavg"] = [round(x, 2) for x in (*loadavg_before, *os.getloadavg())]
    summary["loadavg_note"] = "1/5/15-minute load average before the run, then after it"
    summary["src"] = str(src)
    summary["settings"] = list(options.settings)
    return {
        "summary": summary,
        "machine": machine.describe(),
        "loadgen": {k: v for k, v in load.items() if k not in ("samples_ms", "error_samples_ms")},
    }


def main(argv: list[str] | None = None) -> None:
    default = Options()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--src", type=Path, default=default.src, help="the source tree to run (its src/ directory)"
    )
    parser.add_argument("--label", default=default.label)
    parser.add_argument("--rate", type=float, default=default.rate)
    parser.add_argument("--duration", type=float, default=default.duration)
    parser.add_argument(
        "--timeout", type=float, default=default.timeout, help="client-side timeout per request (s)"
    )
    parser.add_argument("--max-conns", type=int, default=default.max_conns)
    parser.add_argument(
        "--upstream-ms", type=int, default=default.upstream_ms, help="the mock upstream's delay per answer"
    )
    parser.add_argument("--stream", action="store_true", help="streamed requests instead of plain JSON")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default=default.database)
    parser.add_argument("--no-store", action="store_true", help="requests with store: false (no database write)")
    parser.add_argument("--setting", action="append", default=[], help="config key=value (dotted; YAML value)")
    args = parser.parse_args(argv)
    if args.database == "postgresql" and gateways.postgres_url(DATABASE) is None:
        raise SystemExit("PostgreSQL on 127.0.0.1:5432 is not reachable (psql -U postgres)")
    options = Options(
        src=args.src,
        label=args.label,
        rate=args.rate,
        duration=args.duration,
        timeout=args.timeout,
        max_conns=args.max_conns,
        upstream_ms=args.upstream_ms,
        stream=args.stream,
        database=args.database,
        no_store=args.no_store,
        settings=tuple(args.setting),
    )
    result = run(options)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"overload-{args.label}.json"
    out.write_text(json.dumps(result, indent=2))
    _print(result["summary"], args.label)
    print(f"written {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
