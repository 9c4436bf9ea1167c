"""Server-sent events from upstreams: an incremental `text/event-stream` parser and a stream over aiohttp."""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


_READ_SIZE = 8192
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SSEDecoder:
    """Incremental `text/event-stream` parser (WHATWG rules); no line-length limit.

    Streams that end lines with LF only (nearly all) take a bytes fast path that splits whole events
    at once; the first CR switches the stream to the general line-by-line parser.
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._after_cr = False
        self._raw = b""
        self._lf_only = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._lf_only:
            if b"\r" not in chunk:
                return self._feed_lf(chunk)
            self._lf_only = False
            chunk, self._raw = self._raw + chunk, b""
        text = self._text.decode(chunk)
        if self._after_cr and text.startswith("\n"):
            # The previous chunk ended in CR and this LF completes that CRLF: not a new line.
            text = text[1:]
        if text:
            self._after_cr = text.endswith("\r")
        self._buffer += text
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_BREAK.finditer(self._buffer):
            self._line(self._buffer[start : match.start()], events)
            start = match.end()
        self._buffer = self._buffer[start:]
        return events

    def _feed_lf(self, chunk: bytes) -> list[SSEEvent]:
        *blocks, self._raw = (self._raw + chunk).split(b"\n\n")
        events: list[SSEEvent] = []
        for block in blocks:
            name = b""
            data: list[bytes] = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(b" ") else value)
                elif line.startswith(b"event:"):
                    value = line[6:]
                    name = value[1:] if value.startswith(b" ") else value
                elif line == b"data":
                    data.append(b"")  # a field name alone has an empty value
            if data:
                text = b"\n".join(data).decode("utf-8", "replace")
                events.append(SSEEvent(name.decode("utf-8", "replace") or "message", text))
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


class SSEStream:
    """Async iterator of the events of one streamed response body.

    `deadline` gives, whenever more bytes must be waited for, the loop time by which they must come
    (past it the wait raises `TimeoutError`); bytes already received are decoded without a timer.
    """

    def __init__(self, content: aiohttp.StreamReader, *, deadline: Callable[[], float]) -> None:
        self._content = content
        self._deadline = deadline
        self._decoder = SSEDecoder()
        self._pending: list[SSEEvent] = []

    def __aiter__(self) -> SSEStream:
        return self

    async def __anext__(self) -> SSEEvent:
        while not self._pending:
            # Bounded reads: a burst of buffered events is decoded a slice at a time, not all before the first.
            chunk = self._content.read_nowait(_READ_SIZE)
            if not chunk and not self._content.at_eof():
                async with asyncio.timeout_at(self._deadline()):
                    chunk = await self._content.read(_READ_SIZE)
            if not chunk:
                raise StopAsyncIteration
            self._pending = self._decoder.feed(chunk)
            self._pending.reverse()
        return self._pending.pop()
