"""Does one heavy request stall the others? `/healthz` latency while a real server handles it.

Run from the repository root (any source tree: `--src` is put first on the server's PYTHONPATH):

    .venv/bin/python -m bench.stall                              # this tree
    .venv/bin/python -m bench.stall --src /path/to/other/src     # e.g. a checkout from before a change

It starts `python -m respgate serve` (scripted models, SQLite in a temporary directory), then for each
scenario polls `GET /healthz` every ~5 ms on a keep-alive connection while one request runs, and
reports the request's status and duration and the polls' p50/p99/max. Scenarios:

- `tools`: 10,000 function tools (~2.2 MiB): refused (400) after the change, checked one by one before.
- `strings`: the largest input accepted: three messages of just under 10 MiB each (~30 MiB body).
- `items`: 10,000 input items of ~3 KB each (~30 MiB body).
- `echo-stream`, `echo-json`: a 1M-token input echoed back, streamed and not.

Percentiles are nearest-rank. Nothing here asserts: it prints a table (and `--json` writes one).
`bench/probes/p_stall.py` runs the same scenarios through `measure` as the `stall` probe, with verdicts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.005
MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(database_url: str) -> dict[str, Any]:
    """The server's config: the two scripted models the scenarios name."""
    return {
        "api_keys": [],
        "database_url": database_url,
        "log_level": "warning",
        "models": [
            {"name": "echo", "provider": "scripted", "script": [{"echo": True}]},
            {"name": "fixed", "provider": "scripted", "script": [{"text": "ok"}]},
        ],
    }


def _config(directory: Path) -> Path:
    path = directory / "stall.yaml"
    url = f"sqlite+aiosqlite:///{directory / 'stall.sqlite3'}"
    path.write_text(json.dumps(config(url)), encoding="utf-8")  # JSON is YAML
    return path


def _tool(index: int) -> dict[str, Any]:
    return {
        "type": "function",
        "name": f"tool_{index}",
        "description": "Looks something up.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query", "limit"],
            "additionalProperties": False,
        },
    }


# What each scenario sends, for reports.
SCENARIOS = {
    "tools": "10,000 function tools",
    "strings": "the largest accepted input: 3 messages of just under 10 MiB",
    "items": "10,000 input items of ~3 KB",
    "echo-stream": "a 1M-token input echoed back, streamed",
    "echo-json": "a 1M-token input echoed back, JSON",
}


def scenarios() -> dict[str, dict[str, Any]]:
    text = "lorem ipsum dolor sit amet " * (10 * MIB // 27 - 1)
    item_text = "word " * 600
    return {
        "tools": {"model": "fixed", "input": "hi", "tools": [_tool(index) for index in range(10_000)]},
        "strings": {"model": "fixed", "input": [{"role": "user", "content": text[: 10 * MIB - 64]}] * 3},
        "items": {"model": "fixed", "input": [{"role": "user", "content": item_text}] * 10_000},
        # The scripted tokenizer makes a token of up to four characters and the space before them.
        "echo-stream": {"model": "echo", "input": "abcd " * 1_000_000, "stream": True},
        "echo-json": {"model": "echo", "input": "abcd " * 1_000_000},
    }


class Poller(threading.Thread):
    """GET /healthz every POLL_SECONDS on one keep-alive connection; latencies in milliseconds."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self._port = port
        self._done = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=60)
        while not self._done.is_set():
            started = time.perf_counter()
            try:
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                self.latencies.append((time.perf_counter() - started) * 1000)
            except (OSError, http.client.HTTPException):
                self.failures += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=60)
            self._done.wait(max(0.0, POLL_SECONDS - (time.perf_counter() - started)))
        connection.close()

    def stop(self) -> None:
        self._done.set()
        self.join()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def _post(port: int, body: bytes) -> tuple[int, int]:
    """The answer's status and size; status 0 when the connection failed or timed out."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/v1/responses", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        received = len(response.read())
        return response.status, received
    except (OSError, http.client.HTTPException):
        return 0, 0
    finally:
        connection.close()


def bodies(names: Collection[str] = ()) -> dict[str, bytes]:
    """The encoded request body of each scenario in `names` (all when empty), in scenario order."""
    return {
        name: json.dumps(body, separators=(",", ":")).encode()
        for name, body in scenarios().items()
        if not names or name in names
    }


def measure(port: int, name: str, body: bytes) -> dict[str, Any]:
    """Send `body` while polling `/healthz`: the request's status and time, the polls' percentiles."""
    poller = Poller(port)
    poller.start()
    try:
        time.sleep(0.2)  # a baseline of idle polls first
        started = time.perf_counter()
        status, received = _post(port, body)
        duration = time.perf_counter() - started
    finally:
        poller.stop()
    latencies = poller.latencies
    return {
        "scenario": name,
        "body_mb": round(len(body) / MIB, 2),
        "status": status,
        "answer_mb": round(received / MIB, 2),
        "request_s": round(duration, 2),
        "polls": len(latencies),
        "p50_ms": round(_percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "poll_failures": poller.failures,
    }


def _serve(src: Path, config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "respgate", "serve", "--config", str(config), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError("the server did not start within 60 s")


def _table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[key]) for key in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="source tree the server runs from")
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="scenario names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = bodies(args.only or ())
    with tempfile.TemporaryDirectory(prefix="respgate-stall-") as scratch:
        directory = Path(scratch)
        port = _free_port()
        server = _serve(args.src.resolve(), _config(directory), port, directory / "server.log")
        rows = []
        try:
            for name, body in chosen.items():
                rows.append(measure(port, name, body))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"source: {args.src}\n")
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
