"""Starting, pinning, watching and stopping the processes of a benchmark run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs"
# Databases and request bodies are scratch, not results.
WORK = Path(tempfile.gettempdir()) / "respgate-bench"
# The repository's own venv; a checkout without one (a git worktree) runs with the current interpreter.
PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():
    PYTHON = Path(sys.executable)

# On this 2-core machine the gateway gets core 1 to itself and the load generator and the mock
# share core 0: the gateway's numbers then do not depend on how the scheduler mixes the others in,
# and LiteLLM gets exactly the same conditions.
GATEWAY_CPUS = {1}
DRIVER_CPUS = {0}


def pinning_enabled() -> bool:
    return os.environ.get("BENCH_NO_PIN") != "1" and (os.cpu_count() or 1) >= 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its threads (not of its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Busy(Protocol):
    """A process whose CPU time can be watched (a `Service`, or a probe's server)."""

    name: str

    def cpu_seconds(self) -> float: ...


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User+system CPU of the process and its threads (not of its children)."""
        return cpu_seconds(self.proc.pid)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def service(
    name: str,
    cmd: Sequence[str],
    *,
    port: int,
    cpus: set[int] | None,
    ready_timeout: float = 60.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    logs: Path = LOGS,
) -> Iterator[Service]:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    pin = cpus if cpus and pinning_enabled() else None
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd or ROOT,
            env={**os.environ, **(env or {})},
            preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None,
        )
    svc = Service(name=name, proc=proc, port=port, log=log)
    try:
        wait_port(port, ready_timeout, proc)
        yield svc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def mock(port: int | None = None, *, logs: Path = LOGS) -> Any:
    port = port or free_port()
    return service(
        "mock",
        [str(PYTHON), "-m", "bench.mock_upstream", "--port", str(port)],
        port=port,
        cpus=DRIVER_CPUS,
        logs=logs,
    )


def load(
    url: str,
    body: dict[str, Any] | bytes,
    *,
    rate: float,
    duration: float,
    warmup: float = 1.0,
    expect: str = "",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    max_conns: int = 512,
) -> dict[str, Any]:
    """One open-loop run of bench.loadgen in its own process (pinned with the mock)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    WORK.mkdir(parents=True, exist_ok=True)
    body_file = WORK / f"body-{os.getpid()}.json"
    body_file.write_bytes(raw)
    cmd = [
        str(PYTHON),
        "-m",
        "bench.loadgen",
        url,
        "--body",
        f"@{body_file}",
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--timeout",
        str(timeout),
        "--max-conns",
        str(max_conns),
    ]
    if expect:
        cmd += ["--expect", expect]
    for key, value in (headers or {}).items():
        cmd += ["--header", f"{key}: {value}"]
    pin = DRIVER_CPUS if pinning_enabled() else None
    done = subprocess.run(
        cmd,
        capture_output=True,
        cwd=ROOT,
        check=False,
        timeout=warmup + duration + timeout + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def http_json(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
