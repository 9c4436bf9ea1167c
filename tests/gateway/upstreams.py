"""Fake upstreams for the gateway tests, and the `models:` entries that point the gateway at them."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import openai
from fakes import FakeAnthropic, FakeChatCompletions, FakeResponses, FakeUpstream
from support.harness import App

KINDS = ("chat_completions", "openai_responses", "anthropic")

# A distinctive upstream credential: tests search error bodies and logs for it.
UPSTREAM_KEY = "sk-upstream-7c41d9e0b25a4f13a8"

_FAKES: dict[str, type[FakeUpstream]] = {
    "chat_completions": FakeChatCompletions,
    "openai_responses": FakeResponses,
    "anthropic": FakeAnthropic,
}
_PATHS = {"chat_completions": "/v1", "openai_responses": "/v1", "anthropic": ""}


class Upstreams:
    """Starts fakes on demand (each demands the shared upstream key) and stops them after the test."""

    def __init__(self) -> None:
        self._started: list[FakeUpstream] = []
        self._sockets: list[socket.socket] = []

    async def start(self, kind: str, **options: Any) -> FakeUpstream:
        fake = _FAKES[kind](api_key=UPSTREAM_KEY, **options)
        await fake.start()
        self._started.append(fake)
        return fake

    def refusing(self, kind: str) -> str:
        """A base URL whose port is bound but not listening: every connection is refused."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._sockets.append(sock)
        return f"http://127.0.0.1:{sock.getsockname()[1]}{_PATHS[kind]}"

    async def aclose(self) -> None:
        for fake in self._started:
            await fake.aclose()
        for sock in self._sockets:
            sock.close()


def entry(kind: str, target: FakeUpstream | str, *, name: str = "gpt-4.1", **settings: Any) -> dict[str, Any]:
    """A `models:` entry for a remote provider pointed at a fake (or at a bare base URL)."""
    base_url = target if isinstance(target, str) else target.base_url
    return {
        "name": name,
        "provider": kind,
        "upstream_model": f"{kind}-upstream",
        "base_url": base_url,
        "api_key": UPSTREAM_KEY,
        **settings,
    }


@dataclass
class Single:
    """A gateway serving `gpt-4.1` from one fake upstream of `kind`."""

    kind: str
    fake: FakeUpstream
    app: App
    client: openai.AsyncOpenAI
