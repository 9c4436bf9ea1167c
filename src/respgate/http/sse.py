"""Server-sent events: the framing function and an ASGI response that streams, pings and notices hang-ups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from respgate.protocol.errors import log_safe_trace

log = logging.getLogger(__name__)

PING = b": ping\n\n"
_END = b""
_BATCH = 32


def frame(events: Iterable[dict[str, Any]]) -> bytes:
    """One SSE chunk for a batch of events: `event: <type>` and one-line JSON `data:` each."""
    return b"".join(
        b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n" for event in events
    )


class EventStreamResponse:
    """Streams `chunks`; sends `: ping` comments while idle; cancels the producer when the client leaves.

    The producer runs in its own task and hands chunks over through a queue. Whatever it produced
    before it next waits (the tokens of one upstream read, at most a few dozen) goes out in one write,
    so a fast upstream does not cost a write per token, and a slow one still gets every token at once.
    """

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4096)
        producer = asyncio.ensure_future(self._produce(queue))
        consumer = asyncio.ensure_future(self._consume(queue, send))
        watch = asyncio.ensure_future(self._watch(receive))
        try:
            await asyncio.wait({consumer, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Whichever ended first, the others go: a hang-up cancels the producer, which lets it store
            # what it has and stop the model.
            for task in (watch, consumer, producer):
                if not task.done():
                    task.cancel()
            for task in (watch, consumer, producer):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task

    async def _produce(self, queue: asyncio.Queue[bytes]) -> None:
        produced = 0
        try:
            async for chunk in self._chunks:
                if chunk:
                    if queue.full():
                        await queue.put(chunk)
                    else:
                        queue.put_nowait(chunk)
                    produced += 1
                    # A fast upstream never makes the producer wait: step aside after the first chunk
                    # (time to first event) and then every few, so the writer goes out in batches.
                    if produced == 1 or produced % _BATCH == 0:
                        await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("an event stream failed: %s", log_safe_trace(exc))
        finally:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        await queue.put(_END)

    async def _consume(self, queue: asyncio.Queue[bytes], send: Send) -> None:
        while True:
            if queue.empty():
                try:
                    async with asyncio.timeout(self._keepalive):
                        chunk = await queue.get()
                except TimeoutError:
                    await send({"type": "http.response.body", "body": PING, "more_body": True})
                    continue
            else:
                chunk = queue.get_nowait()
            parts = [chunk]
            while chunk is not _END and not queue.empty():
                chunk = queue.get_nowait()
                parts.append(chunk)
            body = b"".join(parts)
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if chunk is _END:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
