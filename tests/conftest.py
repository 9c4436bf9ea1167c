"""Fixtures shared by the end-to-end and engine tests.

- `make_app(models, backend=..., **settings)`: a gateway configured from a settings dict, served
  in-process (httpx ASGI transport) and reached with the official `openai.AsyncOpenAI` client.
- `backend`: "sqlite" and "postgres"; state tests take it to run on both stores.
- `live_server(models, **settings)`: the same app under a real uvicorn server on a loopback port,
  for streaming, keep-alive and disconnect tests, with a sync `openai.OpenAI` client.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest
import pytest_asyncio
from support.events import check_stream
from support.harness import KEY_A, App, make_settings, open_app
from support.recording import SyncRecorder
from support.server import LiveServer

from respgate.storage.base import ResponseStore
from respgate.storage.sql import open_store

POSTGRES = "postgresql://postgres@127.0.0.1:5432"

MakeApp = Callable[..., Awaitable[App]]


class StorePool:
    """One store per backend for the whole session; PostgreSQL gets a fresh database, dropped at the end."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._stores: dict[str, ResponseStore] = {}
        self._database: str | None = None
        self.urls: dict[str, str] = {}

    async def get(self, backend: str) -> ResponseStore:
        if backend not in self._stores:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{self._directory / 'respgate.sqlite3'}"
            elif backend == "postgres":
                self._database = f"respgate_e2e_{secrets.token_hex(6)}"
                connection = await asyncpg.connect(f"{POSTGRES}/postgres")
                try:
                    await connection.execute(f'CREATE DATABASE "{self._database}"')
                finally:
                    await connection.close()
                url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self._database}"
            else:
                raise ValueError(backend)
            self.urls[backend] = url
            self._stores[backend] = await open_store(url)
        return self._stores[backend]

    async def aclose(self) -> None:
        for store in self._stores.values():
            await store.aclose()
        if self._database is not None:
            connection = await asyncpg.connect(f"{POSTGRES}/postgres")
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
            finally:
                await connection.close()


@pytest_asyncio.fixture(scope="session")
async def stores(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StorePool]:
    pool = StorePool(tmp_path_factory.mktemp("store"))
    yield pool
    await pool.aclose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest_asyncio.fixture
async def make_app(stores: StorePool) -> AsyncIterator[MakeApp]:
    """`await make_app([scripted(...)], backend="sqlite", keepalive_seconds=...)` -> App."""
    opened: list[App] = []

    async def make(models: list[dict[str, Any]], *, backend: str = "sqlite", **overrides: Any) -> App:
        store = await stores.get(backend)
        settings = make_settings(models, database_url=stores.urls[backend], **overrides)
        app = await open_app(settings, store)
        opened.append(app)
        return app

    yield make
    for app in opened:
        await app.aclose()


class Live:
    """A running live server plus the sync clients made for it (closed with the fixture)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self._clients: list[openai.OpenAI] = []
        self.recorder = SyncRecorder(httpx.HTTPTransport())

    def client(self, key: str = KEY_A) -> openai.OpenAI:
        client = openai.OpenAI(
            api_key=key,
            base_url=f"{self.server.base_url}/v1",
            max_retries=0,
            http_client=httpx.Client(transport=self.recorder),
        )
        self._clients.append(client)
        return client

    def last_stream(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The last event stream received from this server, validated: (events, final response)."""
        events = self.recorder.last_stream().events
        return events, check_stream(events)

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """`live_server([scripted(...)], **settings)` -> Live, stopped after the test."""
    running: list[tuple[LiveServer, Live]] = []

    def start(models: list[dict[str, Any]], **overrides: Any) -> Live:
        url = f"sqlite+aiosqlite:///{tmp_path / f'live{len(running)}.sqlite3'}"
        server = LiveServer(make_settings(models, database_url=url, **overrides)).__enter__()
        live = Live(server)
        running.append((server, live))
        return live

    yield start
    for server, live in running:
        live.close_clients()
        server.__exit__(None, None, None)
