"""Real TCP listeners run in a thread of the probe runner: a recording listener and a faulty upstream.

`RecordingListener` counts every connection made to it (what a `$ref` to an http URL would cause) and
either answers a small JSON schema or accepts and never answers, holding the socket until released.

`FaultyUpstream` speaks the Chat Completions wire format (`POST …/chat/completions`, JSON or SSE); the
first path segment of the deployment's `base_url` picks its behaviour:

  /ok/               a normal answer ("ok")
  /429/, /500/       that status, OpenAI's error body; 429 carries `Retry-After: 7`
  /hang/             accepts, reads the request, never answers
  /hang-after-first/ headers and the first token ("ok"), then nothing
  /finish-idle/      every chunk up to `finish_reason`, then neither `[DONE]` nor EOF
  /no-done/          every chunk up to `finish_reason`, then EOF without `[DONE]`
  /malformed/        headers, the first token, then a line that is not JSON
  /reset/            the connection is reset (RST) once the request has arrived
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from collections import Counter
from typing import Any, Self


class _ThreadServer:
    """An asyncio server on 127.0.0.1 in its own thread; `close()` drops every open connection."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._release = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._release = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._stopping = asyncio.Event()
        self._ready.set()
        async with server:
            await self._stopping.wait()
        self._release.set()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0.05)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(OSError):
                writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def hold(self) -> None:
        """Wait until the listener is released (or closed): a peer that never answers."""
        await self._release.wait()

    def release(self) -> None:
        """Let every held connection go (they are closed)."""
        self._loop.call_soon_threadsafe(self._release.set)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("listener did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=10)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """The request line and the body of one HTTP/1.1 request (Content-Length bodies only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return lines[0], body


class RecordingListener(_ThreadServer):
    """Counts connections; `hold=False` answers `{"type": "integer"}`, `hold=True` never answers."""

    def __init__(self, *, hold: bool = False) -> None:
        super().__init__()
        self.hold_connections = hold
        self.requests: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hold_connections:
            await self.hold()
            return
        try:
            # Anything that is not a plain HTTP request (a TLS hello) is counted and dropped.
            line, _ = await asyncio.wait_for(read_request(reader), 2.0)
        except (TimeoutError, asyncio.LimitOverrunError, ValueError):
            self.requests.append("(not an HTTP request)")
            return
        self.requests.append(line)
        body = b'{"type": "integer"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-probe",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": "probe",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


_SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _json_answer(status: int, body: dict[str, Any], extra: bytes = b"") -> bytes:
    raw = json.dumps(body).encode()
    reason = {200: b"OK", 429: b"Too Many Requests", 500: b"Internal Server Error"}[status]
    return (
        b"HTTP/1.1 %d %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%bConnection: close\r\n\r\n"
        % (status, reason, len(raw), extra)
        + raw
    )


def _completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-probe",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "probe",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }


class FaultyUpstream(_ThreadServer):
    """A Chat Completions upstream whose behaviour is chosen by the first path segment (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: Counter[str] = Counter()

    def base_url(self, mode: str, tag: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{mode}{'/' + tag if tag else ''}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, body = await read_request(reader)
        path = line.split(" ")[1]
        mode = path.strip("/").split("/")[0]
        # Counted per base_url prefix (everything before /v1), so deployments sharing a mode are told apart.
        self.hits[path.split("/v1/", 1)[0]] += 1
        streamed = b'"stream": true' in body or b'"stream":true' in body
        if mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if mode == "hang":
            await self.hold()
            return
        if mode in ("429", "500"):
            status = int(mode)
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            error = {"error": {"message": f"probe upstream {status}", "type": kind, "param": None, "code": kind}}
            writer.write(_json_answer(status, error, b"Retry-After: 7\r\n" if status == 429 else b""))
            await writer.drain()
            return
        if not streamed and mode == "ok":
            writer.write(_json_answer(200, _completion()))
            await writer.drain()
            return
        await self._sse(mode, writer)

    async def _sse(self, mode: str, writer: asyncio.StreamWriter) -> None:
        first = _http_chunk(_chunk({"role": "assistant", "content": ""})) + _http_chunk(_chunk({"content": "ok"}))
        writer.write(_SSE_HEAD + first)
        await writer.drain()
        if mode == "hang-after-first":
            await self.hold()
            return
        if mode == "malformed":
            writer.write(_http_chunk(b"data: {not json\n\n"))
            await writer.drain()
            await self.hold()
            return
        writer.write(_http_chunk(_chunk({}, "stop")))
        await writer.drain()
        if mode == "finish-idle":
            await self.hold()
            return
        if mode != "no-done":
            writer.write(_http_chunk(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
