"""Server-sent events: the framing function and an ASGI response that streams, pings and notices hang-ups."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

PING = b": ping\n\n"


def frame(events: Iterable[dict[str, Any]]) -> bytes:
    """One SSE chunk for a batch of events: `event: <type>` and one-line JSON `data:` each."""
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n" for event in events
    )


class EventStreamResponse:
    """Streams `chunks`; sends `: ping` comments while idle; cancels the producer when the client leaves."""

    def __init__(
        self, chunks: AsyncIterator[bytes], *, headers: dict[str, str] | None = None, keepalive: float = 15.0
    ) -> None:
        self._chunks = chunks
        self._keepalive = keepalive
        self._headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((key.lower().encode(), value.encode()) for key, value in (headers or {}).items()),
        ]
        self._last_sent = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(self._watch(receive))
        ping = asyncio.ensure_future(self._ping(send))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, ping):
                task.cancel()
            if not pump.done():
                # The client hung up: cancelling the producer lets it store what it has and stop the model.
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pump
            for task in (watch, ping):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _pump(self, send: Send) -> None:
        try:
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._last_sent = time.monotonic()
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _ping(self, send: Send) -> None:
        while True:
            idle = time.monotonic() - self._last_sent
            if idle >= self._keepalive:
                await send({"type": "http.response.body", "body": PING, "more_body": True})
                self._last_sent = time.monotonic()
                idle = 0.0
            await asyncio.sleep(self._keepalive - idle)
