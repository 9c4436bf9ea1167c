"""`kill -9` of a real server process under a steady load of stored requests: every response a client
was answered for is there after the restart, whole (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest_asyncio
from support.harness import KEY_A, scripted
from support.processes import ServerProcess, Servers, database_for

SETTINGS = {"api_keys": [KEY_A], "log_level": "warning", "models": [scripted("echo", {"echo": True})]}
WRITERS = 8
ACKNOWLEDGED_BEFORE_KILL = 300


@pytest_asyncio.fixture
async def servers(backend: str, tmp_path: Path) -> AsyncIterator[Servers]:
    async with database_for(backend, tmp_path) as url:
        started = Servers(tmp_path, url)
        try:
            yield started
        finally:
            await started.close()


class Load:
    """Writers sending stored requests (half of them streamed) until the server goes away."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        # id -> the response as the client received it: the JSON body, or the `response.completed` event's.
        self.acknowledged: dict[str, dict[str, Any]] = {}
        self.cut_off = 0
        self.enough = asyncio.Event()

    async def writer(self, number: int) -> None:
        async with self._server.client() as client:
            for sent in range(1_000_000):
                text = f"writer {number} request {sent}"
                try:
                    final = await (self._streamed(client, text) if sent % 2 else self._plain(client, text))
                except (openai.APIConnectionError, httpx.TransportError):
                    self.cut_off += 1
                    return
                if final is not None:
                    assert final["output"][0]["content"][0]["text"] == text
                    self.acknowledged[final["id"]] = final
                if len(self.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                    self.enough.set()

    @staticmethod
    async def _plain(client: openai.AsyncOpenAI, text: str) -> dict[str, Any] | None:
        raw = await client.responses.with_raw_response.create(model="echo", input=text)
        body: dict[str, Any] = raw.http_response.json()
        return body

    @staticmethod
    async def _streamed(client: openai.AsyncOpenAI, text: str) -> dict[str, Any] | None:
        # Only a stream that reached `response.completed` was answered; one cut before it was not.
        async with await client.responses.create(model="echo", input=text, stream=True) as stream:
            async for event in stream:
                if event.type == "response.completed":
                    completed: dict[str, Any] = event.response.model_dump(mode="json", exclude_unset=True)
                    return completed
        return None


async def test_every_answered_response_survives_a_kill_9_under_load(servers: Servers) -> None:
    first = await servers.start("first", SETTINGS)
    load = Load(first)
    writers = [asyncio.create_task(load.writer(number)) for number in range(WRITERS)]
    async with asyncio.timeout(120):
        await load.enough.wait()
    await first.kill()
    await asyncio.gather(*writers)
    # Every writer was mid-request when the process died, and lost only that request.
    assert load.cut_off == WRITERS
    restarted = await servers.start("restarted", SETTINGS)
    started = time.monotonic()
    async with restarted.client() as client:
        for response_id, answered in load.acknowledged.items():
            stored = (await client.responses.with_raw_response.retrieve(response_id)).http_response.json()
            assert stored["status"] == "completed"
            assert {key: stored[key] for key in answered} == answered
    print(f"{len(load.acknowledged)} answered responses all stored, checked in {time.monotonic() - started:.1f} s")
