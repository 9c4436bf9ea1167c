"""Probe: what happens to background responses when a server process dies or is stopped.

    .venv/bin/python -m bench.background_probe --backend sqlite       # or postgres; --count 130
    PYTHONPATH=<old checkout>/src .venv/bin/python -m bench.background_probe --legacy   # a version without `background:`

Four probes, each on its own fresh database, with real `respgate serve` processes and the default lease
settings (a lease of 30 s, a heartbeat of 5 s):

1. kill -9 with `--count` background responses queued and running; then a restarted process: how many end
   completed, and how long after the kill the last one ended (or what they still are after `--wait` s).
2. cancel, from a second process, of a response the first one runs.
3. `GET ?stream=true`, on a second process, of a response the first one runs: the events received.
4. SIGTERM with background responses running: what they are stored as, then whether a new process ends them.

The killed or stopped process generates slowly (0.05 s a token), the process after it fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

KEY = "sk-probe-0123456789"
TEXT = " ".join(f"w{n}" for n in range(200))  # 200 tokens: 10 s at 0.05 s a token
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _settings(url: str, *, delay: float, legacy: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "api_keys": [KEY],
        "database_url": url,
        "log_level": "warning",
        "models": [{"name": "slow", "provider": "scripted", "script": [{"text": TEXT}], "delay": delay}],
    }
    if not legacy:
        settings["background"] = {"grace_seconds": 2}
    return settings


class Server:
    def __init__(self, directory: Path, name: str, settings: dict[str, Any]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump(settings))
        self.log = directory / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Server:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "respgate", "serve", "--config", str(self.config), "--port", str(self.port)),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.log} did not start")

    async def stop(self, sig: signal.Signals) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
            await self.process.wait()


class Probe:
    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.directory = directory
        self.servers: list[Server] = []
        self.databases: list[str] = []
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=120)

    async def database(self) -> str:
        if self.args.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.directory / f'{secrets.token_hex(4)}.sqlite3'}"
        name = f"respgate_probe_{secrets.token_hex(6)}"
        connection = await asyncpg.connect(f"{POSTGRES}/postgres")
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()
        self.databases.append(name)
        return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"

    async def server(self, url: str, name: str, *, slow: bool) -> Server:
        settings = _settings(url, delay=0.05 if slow else 0.001, legacy=self.args.legacy)
        server = await Server(self.directory, name, settings).start()
        self.servers.append(server)
        return server

    async def create(self, server: Server) -> str:
        body = {"model": "slow", "input": "probe", "background": True}
        reply = await self.http.post(f"{server.url}/v1/responses", json=body)
        reply.raise_for_status()
        response_id: str = reply.json()["id"]
        return response_id

    async def status(self, server: Server, response_id: str) -> str:
        status: str = (await self.http.get(f"{server.url}/v1/responses/{response_id}")).json()["status"]
        return status

    async def running(self, server: Server, response_id: str) -> None:
        for _ in range(2_000):
            if await self.status(server, response_id) == "in_progress":
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{response_id} never ran")

    async def until_ended(self, server: Server, ids: list[str]) -> tuple[Counter[str], float | None]:
        started = time.monotonic()
        while True:
            statuses = Counter([await self.status(server, response_id) for response_id in ids])
            if not statuses["queued"] + statuses["in_progress"]:
                return statuses, time.monotonic() - started
            if time.monotonic() - started > self.args.wait:
                return statuses, None
            await asyncio.sleep(0.5)

    async def kill_with_work(self) -> dict[str, Any]:
        url = await self.database()
        first = await self.server(url, "kill-first", slow=True)
        ids = [await self.create(first) for _ in range(self.args.count)]
        await self.running(first, ids[0])
        await first.stop(signal.SIGKILL)
        killed = time.monotonic()
        restarted = await self.server(url, "kill-restarted", slow=False)
        statuses, _ = await self.until_ended(restarted, ids)
        ended = time.monotonic() - killed if not statuses["queued"] + statuses["in_progress"] else None
        return {"count": len(ids), "statuses": dict(statuses), "seconds_from_kill_to_all_ended": ended}

    async def cancel_elsewhere(self) -> dict[str, Any]:
        url = await self.database()
        first = await self.server(url, "cancel-first", slow=True)
        second = await self.server(url, "cancel-second", slow=False)
        response_id = await self.create(first)
        await self.running(first, response_id)
        reply = await self.http.post(f"{second.url}/v1/responses/{response_id}/cancel")
        body = reply.json()
        return {"http_status": reply.status_code, "status": body.get("status"), "error": body.get("error")}

    async def stream_elsewhere(self) -> dict[str, Any]:
        url = await self.database()
        first = await self.server(url, "stream-first", slow=True)
        second = await self.server(url, "stream-second", slow=False)
        response_id = await self.create(first)
        await self.running(first, response_id)
        reply = await self.http.get(f"{second.url}/v1/responses/{response_id}", params={"stream": "true"})
        events = [json.loads(line[5:]) for line in reply.text.splitlines() if line.startswith("data:")]
        return {
            "http_status": reply.status_code,
            "events": len(events),
            "last": events[-1]["type"] if events else None,
        }

    async def sigterm_with_work(self) -> dict[str, Any]:
        url = await self.database()
        first = await self.server(url, "term-first", slow=True)
        ids = [await self.create(first) for _ in range(4)]
        for response_id in ids:
            await self.running(first, response_id)
        await first.stop(signal.SIGTERM)
        after = await self.server(url, "term-after", slow=False)
        stored = Counter([await self.status(after, response_id) for response_id in ids])
        statuses, _ = await self.until_ended(after, ids)
        return {"right_after_sigterm": dict(stored), "then": dict(statuses)}

    async def aclose(self) -> None:
        for server in self.servers:
            await server.stop(signal.SIGKILL)
        await self.http.aclose()
        for name in self.databases:
            connection = await asyncpg.connect(f"{POSTGRES}/postgres")
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--count", type=int, default=130)
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for work to end")
    parser.add_argument("--legacy", action="store_true", help="no `background:` settings (older versions)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="respgate-probe-") as scratch:
        probe = Probe(args, Path(scratch))
        try:
            report = {
                "backend": args.backend,
                "code": os.environ.get("PYTHONPATH", "installed"),
                "kill_9_with_background_work": await probe.kill_with_work(),
                "cancel_from_another_process": await probe.cancel_elsewhere(),
                "stream_from_another_process": await probe.stream_elsewhere(),
                "sigterm_with_background_work": await probe.sigterm_with_work(),
            }
        finally:
            await probe.aclose()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
