"""`respgate serve` as a real subprocess on a given source tree: config, start, signals, memory, log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench import procs
from bench.probes.registry import Context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scripted(
    name: str, *, text: str | None = None, echo: bool = False, delay: float = 0.0, **turn: Any
) -> dict[str, Any]:
    """A scripted model entry with one turn (repeated for every later turn)."""
    step: dict[str, Any] = dict(turn)
    if text is not None:
        step["text"] = text
    if echo:
        step["echo"] = True
    entry: dict[str, Any] = {"name": name, "provider": "scripted", "script": [step]}
    if delay:
        entry["delay"] = delay
    return entry


class Server:
    """One server process; `stderr` is kept in a file so that what it logged can be read back."""

    def __init__(self, ctx: Context, name: str, config: dict[str, Any], *, src: Path | None = None) -> None:
        self.ctx = ctx
        self.src = src or ctx.src
        self.name = name
        self.config = config
        self.port = free_port()
        self.dir = ctx.scratch(name)
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, *, timeout: float = 60.0) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": str(self.src)}
        cmd = [
            self.ctx.python,
            "-m",
            "respgate",
            "serve",
            "--config",
            str(self.config_path),
            "--port",
            str(self.port),
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} start on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        self._wait_ready(timeout)
        self.started_at = time.monotonic()

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    sock.settimeout(2)
                    if sock.recv(16).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: no /healthz answer after {timeout:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the process dies where it stands."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait for the exit; seconds it took (the process is killed past `timeout`)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return round(time.monotonic() - started, 2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate(timeout=15)

    def cpu_seconds(self) -> float:
        return procs.cpu_seconds(self.pid)

    def status_kib(self, field: str) -> int:
        """A `/proc/<pid>/status` memory field (VmHWM, VmRSS …) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        return 0

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


@contextmanager
def running(ctx: Context, name: str, config: dict[str, Any], *, src: Path | None = None) -> Iterator[Server]:
    """A started server, always stopped (and killed if it will not stop) on the way out."""
    server = Server(ctx, name, config, src=src)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.kill()
