"""Real `python -m respgate serve` processes sharing one database, to be killed (SIGKILL) or stopped (SIGTERM).

- `ServerProcess(settings, directory, name)`: writes `settings` as the YAML config, starts the server on a
  free loopback port and waits until it answers; `kill()` sends SIGKILL, `terminate()` SIGTERM (both wait for the exit).
- `Servers`: starts them and SIGKILLs whatever still runs when the test ends.
- `database_for(backend, tmp_path)`: a SQLite file, or a new PostgreSQL database dropped afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import yaml

from support.harness import KEY_A

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, settings: dict[str, Any], directory: Path, name: str) -> None:
        self.name = name
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A model only this process has: readiness is checked against it, so that a server of someone else's
        # that took the port in the meantime is not mistaken for this one.
        self._marker = f"marker-{secrets.token_hex(8)}"
        marked = {**settings, "models": [*settings["models"], {"name": self._marker, "provider": "scripted"}]}
        keys = settings.get("api_keys") or []
        self._headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
        self._config = directory / f"{name}.yaml"
        self._config.write_text(yaml.safe_dump(marked), encoding="utf-8")
        self.log = directory / f"{name}.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> ServerProcess:
        # The free port is found before the server binds it: another process on the machine may take it
        # first, and the server then exits at once; it gets another port.
        for _ in range(5):
            if await self._start_on_port():
                return self
            self.port = _free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"{self.name} found no free port:\n{self.tail()}")

    async def _start_on_port(self) -> bool:
        with self.log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "respgate", "serve", "--config", str(self._config), "--port", str(self.port)),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                if self._process.returncode is not None:
                    if "address already in use" in self.tail(5):
                        return False
                    raise RuntimeError(f"{self.name} exited with {self._process.returncode}:\n{self.tail()}")
                try:
                    reply = await client.get(f"{self.base_url}/v1/models", headers=self._headers, timeout=2)
                    if reply.status_code == 200 and self._marker in reply.text:
                        return True
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start within 60 s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def client(self, key: str = KEY_A) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=key, base_url=f"{self.base_url}/v1", max_retries=0, timeout=60)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to store or hand over anything."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        await self._process.wait()

    async def terminate(self) -> int:
        """SIGTERM, then wait (at most two minutes) for the process to exit; its exit code."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(120):
                return await self._process.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name} did not exit within 120 s of SIGTERM:\n{self.tail()}") from None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


class Servers:
    """Starts server processes on one database; SIGKILLs the ones still running at `close()`."""

    def __init__(self, directory: Path, database_url: str) -> None:
        self._directory = directory
        self.database_url = database_url
        self._started: list[ServerProcess] = []

    async def start(self, name: str, settings: dict[str, Any]) -> ServerProcess:
        server = ServerProcess({"database_url": self.database_url, **settings}, self._directory, name)
        self._started.append(server)
        return await server.start()

    async def close(self) -> None:
        for server in self._started:
            if server.running:
                await server.kill()


@asynccontextmanager
async def database_for(backend: str, directory: Path) -> AsyncIterator[str]:
    """A database URL for `backend`: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'shared.sqlite3'}"
        return
    name = f"respgate_procs_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
