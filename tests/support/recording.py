"""An httpx transport wrapper that keeps a copy of every body it passes on, chunk by chunk.

The SDK turns events into its own models (ints become floats, unknown keys move around), so the
validator reads the wire instead: tests use the SDK as users do and check what was actually sent.
Chunks are copied as the client reads them, so streaming and early hang-ups behave as without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx

from support.sse import ParsedStream, parse_sse_text


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    content_type: str
    body: bytearray = field(default_factory=bytearray)


class _AsyncTee(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, sink: bytearray) -> None:
        self._inner = inner
        self._sink = sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._sink += chunk
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _SyncTee(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, sink: bytearray) -> None:
        self._inner = inner
        self._sink = sink

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._sink += chunk
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _Log:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def _record(self, request: httpx.Request, response: httpx.Response) -> Exchange:
        exchange = Exchange(
            request.method, request.url.path, response.status_code, response.headers.get("content-type", "")
        )
        self.exchanges.append(exchange)
        return exchange

    def streams(self) -> list[ParsedStream]:
        """Every `text/event-stream` body received so far, parsed."""
        return [
            parse_sse_text(exchange.body.decode())
            for exchange in self.exchanges
            if exchange.content_type.startswith("text/event-stream")
        ]

    def last_stream(self) -> ParsedStream:
        streams = self.streams()
        assert streams, "no event stream was received"
        return streams[-1]


class AsyncRecorder(httpx.AsyncBaseTransport, _Log):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        _Log.__init__(self)
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        exchange = self._record(request, response)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_AsyncTee(response.stream, exchange.body),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncRecorder(httpx.BaseTransport, _Log):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        _Log.__init__(self)
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        exchange = self._record(request, response)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_SyncTee(response.stream, exchange.body),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()
