"""Upstreams that break the way real ones do, on a real connection, in any fake's wire format.

Queue a `Fault` on any fake like a `Reply` (`fake.enqueue(HANG_AFTER_HEADERS)`): its reply is rendered
in that fake's format, sent `upto` a point of the answer, and then the connection `then`:

- `end`: the body ends cleanly there (a stream cut short, or missing its end marker);
- `reset`: a TCP reset (RST), as from a crashed or killed upstream;
- `hang`: nothing more, with the connection held open (`keepalive`: a `: keep-alive` comment this
  often meanwhile) until the client drops it or the fake closes;
- `garbage`: an event whose data is not JSON, then the end.

`drip` pauses before every event: a slow but steady upstream. The points of an answer are found in
each format: `headers` (status and headers only), `first_delta` (through the first event that carries
content), `finish` (through the event that carries the finish: Chat Completions' `finish_reason` chunk,
Anthropic's `message_delta`, the Responses API's `response.completed`), `all`; `nothing` misbehaves
before the status line. HTTP errors (429 with `Retry-After`, 500) are `Failure`s; a refused
connection needs no server at all (a bound port that does not listen).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from fakes.script import Reply

Point = Literal["nothing", "headers", "first_delta", "finish", "all"]
Ending = Literal["end", "reset", "hang", "garbage"]

_POLL = 0.02
_DELTA_FIELDS = ("content", "tool_calls", "reasoning_content", "refusal")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """How one request goes wrong (see the module docstring)."""

    reply: Reply = field(default_factory=lambda: Reply(text="Half an answer is not an answer.", chunks=4))
    upto: Point = "all"
    then: Ending = "end"
    keepalive: float | None = None
    drip: float = 0.0


RESET_BEFORE_RESPONSE = Fault(upto="nothing", then="reset")
HANG_BEFORE_RESPONSE = Fault(upto="nothing", then="hang")
RESET_AFTER_HEADERS = Fault(upto="headers", then="reset")
HANG_AFTER_HEADERS = Fault(upto="headers", then="hang", keepalive=0.05)
GARBAGE_BEFORE_FIRST_DELTA = Fault(upto="headers", then="garbage")
HANG_AFTER_FIRST_DELTA = Fault(upto="first_delta", then="hang")
RESET_AFTER_FIRST_DELTA = Fault(upto="first_delta", then="reset")
GARBAGE_AFTER_FIRST_DELTA = Fault(upto="first_delta", then="garbage")
ENDS_BEFORE_FINISH = Fault(upto="first_delta", then="end")
IDLE_AFTER_FINISH = Fault(upto="finish", then="hang")
RESET_AFTER_FINISH = Fault(upto="finish", then="reset")
ENDS_AFTER_FINISH = Fault(upto="finish", then="end")


def _carries_content(name: str | None, data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    if name is not None and (name.endswith(".delta") or name == "content_block_delta"):
        return True
    return any(
        any((choice.get("delta") or {}).get(key) for key in _DELTA_FIELDS) for choice in data.get("choices") or []
    )


def _carries_finish(name: str | None, data: Any) -> bool:
    if name in ("response.completed", "response.incomplete", "message_delta"):
        return True
    return isinstance(data, dict) and any(choice.get("finish_reason") for choice in data.get("choices") or [])


def _count(events: list[tuple[str | None, Any]], upto: Point) -> int:
    """How many of `events` are sent before the fault."""
    if upto == "headers":
        return 0
    if upto == "all":
        return len(events)
    found = _carries_content if upto == "first_delta" else _carries_finish
    return next(index + 1 for index, (name, data) in enumerate(events) if found(name, data))


def _frame(name: str | None, data: Any) -> bytes:
    head = f"event: {name}\n" if name else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}\n\n".encode()


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST rather than a FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _hold(
    request: web.Request, response: web.StreamResponse | None, fault: Fault, closing: asyncio.Event
) -> None:
    """Say nothing (but keep-alive comments) until the client hangs up or the fake closes."""
    loop = asyncio.get_running_loop()
    next_comment = loop.time() + (fault.keepalive or 0)
    while not closing.is_set() and not _gone(request):
        await asyncio.sleep(_POLL)
        if response is not None and fault.keepalive and loop.time() >= next_comment:
            next_comment += fault.keepalive
            await response.write(b": keep-alive\n\n")


async def misbehave(
    request: web.Request, events: list[tuple[str | None, Any]], fault: Fault, closing: asyncio.Event
) -> web.StreamResponse:
    """Answer `request` with `events` (a fake's rendering of `fault.reply`), going wrong as `fault` says."""
    response: web.StreamResponse | None = None
    try:
        if fault.upto != "nothing":
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            for name, data in events[: _count(events, fault.upto)]:
                if fault.drip:
                    await asyncio.sleep(fault.drip)
                await response.write(_frame(name, data))
        if fault.then == "reset":
            _reset(request)
        elif fault.then == "hang":
            await _hold(request, response, fault, closing)
        elif fault.then == "garbage" and response is not None:
            await response.write(b'data: {"type": "response.output_text.delta", "delta": \n\n')
        if response is not None and not _gone(request):
            await response.write_eof()
    except ConnectionError:
        pass  # the client hung up first: nothing left to say
    if response is None:
        # Never sent: the connection is already gone (reset) or given up on (hang).
        with contextlib.suppress(Exception):
            _reset(request)
        return web.Response()
    return response
