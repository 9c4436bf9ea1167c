"""The HTTP side shared by every fake: a real aiohttp server on 127.0.0.1, a queue, a request log."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

from fakes.faults import Fault, misbehave
from fakes.script import Behaviour, Failure, Reply


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeUpstream:
    """A scripted upstream speaking one provider's wire format on a free loopback port.

    Queue behaviours with `enqueue`; each request takes the next one (or `default` when the queue is
    empty; with neither, a 500 says so). A `Fault` breaks a streamed answer (see `fakes.faults`).
    Every request is kept in `requests`. With `api_key` set, requests without that key get the
    provider's 401.
    """

    path = "/"
    base_path = ""

    def __init__(self, *, api_key: str | None = None, default: Behaviour | Fault | None = None) -> None:
        self.api_key = api_key
        self.default = default
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour | Fault] = deque()
        # Set on close: a fault holding a connection open lets go.
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.base_path}"

    @property
    def last_body(self) -> dict[str, Any]:
        return self.requests[-1].body

    def enqueue(self, *behaviours: Behaviour | Fault) -> None:
        self._queue.extend(behaviours)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        if self.api_key is not None and self.presented_key(request) != self.api_key:
            return self.error_response(Failure(status=401, message="Incorrect API key provided."))
        behaviour = self._queue.popleft() if self._queue else self.default
        if behaviour is None:
            return self.error_response(Failure(status=500, message="fake upstream: nothing queued"))
        if isinstance(behaviour, Failure):
            return self.error_response(behaviour)
        if isinstance(behaviour, Fault):
            return await misbehave(request, self.render_events(body, behaviour.reply), behaviour, self._closing)
        if not body.get("stream"):
            return web.json_response(self.render_json(body, behaviour))
        return await self._stream(request, body, behaviour)

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for count, (event, data) in enumerate(self.render_events(body, reply)):
            if reply.disconnect_after is not None and count == reply.disconnect_after:
                # Drop the connection without ending the chunked body: the client sees a broken stream.
                assert request.transport is not None
                request.transport.close()
                return response
            head = f"event: {event}\n" if event else ""
            payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
            await response.write(f"{head}data: {payload}\n\n".encode())
        await response.write_eof()
        return response

    # Per provider -------------------------------------------------------------------------------

    def presented_key(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def error_response(self, failure: Failure) -> web.Response:
        kind = "invalid_request_error" if failure.status < 500 else "server_error"
        code = failure.code
        if failure.status == 429:
            # OpenAI names the limit that was hit as the type (requests or tokens) of a rate limit.
            code = code or "rate_limit_exceeded"
            kind = "tokens" if code == "rate_limit_exceeded" else code
        body = {"error": {"message": failure.message, "type": kind, "param": None, "code": code}}
        return web.json_response(body, status=failure.status, headers=failure.headers)

    def render_json(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        raise NotImplementedError

    def render_events(self, body: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
        """`(event name or None, data)` pairs; data is JSON-serialised unless it is a string."""
        raise NotImplementedError
