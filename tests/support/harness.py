"""Building a gateway from a settings dict and talking to it the way users do: the official SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai

from respgate.config import Settings
from respgate.http.app import Gateway, create_app
from respgate.providers.registry import build_provider
from respgate.storage.base import ResponseStore
from support.events import check_stream
from support.recording import AsyncRecorder
from support.sse import ParsedStream, parse_sse

KEY_A = "sk-test-alpha-0123456789"
KEY_B = "sk-test-bravo-9876543210"
BASE = "http://respgate.test"


def scripted(name: str, *turns: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A `models:` entry for the scripted provider: turn N answers a context holding N assistant turns."""
    return {"name": name, "provider": "scripted", "script": list(turns), **settings}


def make_settings(models: list[dict[str, Any]], *, database_url: str, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {"api_keys": [KEY_A, KEY_B], "database_url": database_url, "models": models}
    raw.update(overrides)
    # A live server shares its process (and the GIL) with the test driving it, so its event loop's lag
    # measures the test as much as the server: refusing for it only where a test asks.
    raw["overload"] = {"max_loop_lag_seconds": 60.0, **overrides.get("overload", {})}
    return Settings.model_validate(raw)


class App:
    """A gateway and its ASGI app, reached in-process through httpx's ASGI transport."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.app = create_app(gateway)
        self._clients: list[openai.AsyncOpenAI] = []
        self.recorder = AsyncRecorder(httpx.ASGITransport(app=self.app, raise_app_exceptions=False))
        self.http = self._transport_client()

    def _transport_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.recorder, base_url=BASE)

    def last_stream(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The last event stream any client of this app received, validated: (events, final response)."""
        events = self.recorder.last_stream().events
        return events, check_stream(events)

    def client(self, key: str = KEY_A) -> openai.AsyncOpenAI:
        """The official async client, without retries, authenticated with `key`."""
        client = openai.AsyncOpenAI(
            api_key=key, base_url=f"{BASE}/v1", max_retries=0, http_client=self._transport_client()
        )
        self._clients.append(client)
        return client

    def auth_headers(self, key: str = KEY_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def aclose(self) -> None:
        await self.gateway.jobs.aclose()
        for client in self._clients:
            await client.close()
        await self.http.aclose()
        # The store is shared across tests (see conftest); only the providers belong to this gateway.
        for provider in self.gateway.router.providers():
            aclose = getattr(provider, "aclose", None)
            if aclose is not None:
                await aclose()


async def open_app(settings: Settings, store: ResponseStore) -> App:
    gateway = await Gateway.open(settings, build_provider=build_provider, store=store)
    return App(gateway)


async def stream_events(client: openai.AsyncOpenAI, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """POST a streaming create through the SDK, read the raw SSE, validate it; (events, final response)."""
    parsed = await raw_stream(client, **params)
    return parsed.events, check_stream(parsed.events)


async def raw_stream(client: openai.AsyncOpenAI, **params: Any) -> ParsedStream:
    async with client.responses.with_streaming_response.create(stream=True, **params) as response:
        assert response.http_response.headers["content-type"].startswith("text/event-stream")
        assert response.http_response.headers.get("x-request-id")
        lines = [line async for line in response.iter_lines()]
    return parse_sse(lines)
