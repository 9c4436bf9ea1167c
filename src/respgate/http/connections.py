"""uvicorn's httptools protocol with the limits it lacks, so that connections cannot be hoarded.

uvicorn (0.54) times out idle keep-alive connections only: a client that connects and sends its headers
one byte at a time, or never finishes its body, holds a connection (and a file descriptor) forever,
and httptools buffers headers without bound. This protocol adds, per connection:

- a header deadline, from accepting the connection (or from the first byte of a kept-alive
  request) to the end of the headers: 408 when a request was under way, else a silent close;
- a header size limit, checked before the bytes reach the parser: 431;
- a body timeout, the longest pause between two pieces of a body: the connection is closed, so the
  app sees `http.disconnect` and never gets a request it cannot finish;
- an answer sent before the body was read (a 413, say) ends the connection, instead of reading on;

and, per server (`ConnectionTable`), a connection cap and a budget for unfinished headers. At the cap a
new connection pushes out the connection that has been idle longest without a request in the app (a
fresh or kept-alive connection, or one still sending headers), so hoarders cannot lock out a new
client; only when every connection is in a request does the newcomer get a 503 with `Retry-After`.

Every refusal is written, then the connection half-closes and reads (and drops) whatever the client
still sends for a moment: closing with unread bytes would reset the connection and the client could
lose the answer.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from respgate.config import ServerSettings
from respgate.protocol.errors import APIError, InvalidRequest, ServerError

log = logging.getLogger(__name__)

# How long a refused connection may go on sending (into the void) before it is closed.
LINGER_SECONDS = 2.0
RETRY_AFTER_SECONDS = 1
_WARN_EVERY = 10.0


# A connection's phase. Plain ints: they are compared several times per request, and an Enum member
# lookup costs ten times as much.
HEAD = 0  # waiting for the request line and headers
BODY = 1  # the app has the request; its body is still arriving
APP = 2  # the request is read; the app is answering
IDLE = 3  # kept alive between requests
DONE = 4  # answered for the last time; lingering until closed


class ConnectionTable:
    """One server's connections that may give way, and the bytes held by unfinished headers."""

    def __init__(self, settings: ServerSettings, *, cap: int, hard_cap: int) -> None:
        self.settings = settings
        self.cap = cap
        # Past this many, not even a 503 is written: the connection is reset at once.
        self.hard_cap = hard_cap
        # Connections with no request in the app, longest idle first (dicts keep insertion order).
        self.idle: dict[GuardedHttpToolsProtocol, None] = {}
        # Connections holding unfinished headers, oldest first, and the bytes they hold.
        self.heads: dict[GuardedHttpToolsProtocol, None] = {}
        self.pending_header_bytes = 0
        self._warned: dict[str, float] = {}

    def evict_idle(self, open_connections: int) -> bool:
        """Close the longest-idle connection that is not in a request; False when there is none."""
        victim = next(iter(self.idle), None)
        if victim is None:
            return False
        self.warn("%d connections, the cap is %d: closing the longest-idle ones", open_connections, self.cap)
        victim.give_way()
        return True

    def shed_heads(self) -> None:
        """Close the oldest unfinished headers until the rest fit the budget."""
        budget = self.settings.max_pending_header_bytes
        while self.pending_header_bytes > budget and self.heads:
            next(iter(self.heads)).give_way()

    def warn(self, message: str, *args: object) -> None:
        """Log each kind of message at most every few seconds: a flood must not flood the log too."""
        now = time.monotonic()
        if now - self._warned.get(message, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[message] = now
            log.warning(message, *args)


def refusal(status: int, error: APIError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete `Connection: close` answer with an OpenAI-shaped error body."""
    body = orjson.dumps(error.body())
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body))
    if status == 503:
        lines.append(b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS)
    lines += [b"\r\n", body]
    return b"".join(lines)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; `table` is set on a subclass per server (see `guarded_protocol`)."""

    table: ClassVar[ConnectionTable]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = self.table.settings
        self._max_header_bytes = self._limits.max_header_bytes
        self._phase = HEAD
        self._timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # of the current request's head, as received
        self._held = 0  # of those, counted in the table's pending_header_bytes
        self._last_body = 0.0

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = self.table
        if len(self.connections) > table.cap and not table.evict_idle(len(self.connections)):
            if len(self.connections) > table.hard_cap:
                transport.abort()
                return
            table.warn("%d connections, all in a request: refusing new ones with 503", len(self.connections))
            message = "The server has too many open connections right now. Please retry after a moment."
            self._refuse(503, ServerError(message, code="server_overloaded"))
            return
        table.idle[self] = None
        self._arm(self._limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._disarm()
        self._release_head()
        self.table.idle.pop(self, None)
        self._phase = DONE

    def give_way(self) -> None:
        """Close this connection (it holds no request in the app) to make room for another."""
        self._release_head()
        self.table.idle.pop(self, None)
        self._disarm()
        self._phase = DONE
        self.transport.close()

    # Reading

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase == IDLE:
            phase = self._phase = HEAD
            self._head_bytes = 0
        if phase == HEAD:
            size = self._head_bytes + len(data)
            if size > self._max_header_bytes and not self._head_ends_in_time(data):
                self._refuse_oversize()
                return
            self._head_bytes = size
        elif phase == DONE:
            return
        super().data_received(data)
        phase = self._phase
        if phase == HEAD:
            if not self.transport.is_closing():
                self._hold_head(len(data))
        elif phase == BODY:
            self._last_body = self.loop.time()
            if self._timer is None:
                self._arm(self._limits.body_timeout, self._body_stalled)

    def _head_ends_in_time(self, data: bytes) -> bool:
        """Whether the head ends in `data` before the limit (with a body after it in the same read)."""
        end = data.find(b"\r\n\r\n")
        return end >= 0 and self._head_bytes + end + 4 <= self._max_header_bytes

    def _refuse_oversize(self) -> None:
        message = f"Request header fields too large: the limit is {self._max_header_bytes} bytes."
        self._refuse(431, InvalidRequest(message, code="request_header_fields_too_large"))

    def _hold_head(self, size: int) -> None:
        table = self.table
        if not self._held:
            table.heads[self] = None
        self._held += size
        table.pending_header_bytes += size
        if table.pending_header_bytes > self._limits.max_pending_header_bytes:
            table.warn("unfinished headers hold %d bytes: dropping the oldest", table.pending_header_bytes)
            table.shed_heads()
        if self._timer is None and self._phase == HEAD:
            self._arm(self._limits.header_timeout, self._head_timed_out)

    def _release_head(self) -> None:
        if self._held:
            self.table.pending_header_bytes -= self._held
            self._held = 0
            self.table.heads.pop(self, None)

    # Parser callbacks (called by httptools from within data_received)

    def on_headers_complete(self) -> None:
        if self._held:
            self._release_head()
        if self._timer is not None:
            self._disarm()
        self.table.idle.pop(self, None)
        self._phase = BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._phase == BODY:
            self._phase = APP
            if self._timer is not None:
                self._disarm()

    # Called by the request cycle when the app's answer is complete

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or not self.cycle.response_complete:
            return  # closed, or a pipelined request is still to be answered
        if self._phase == APP:
            # uvicorn's keep-alive timer (idle_timeout) is armed; the connection may now give way.
            self._phase = IDLE
            self.table.idle[self] = None
        elif self._phase == BODY:
            # Answered before the body was read (a 413, say): reading the rest would only serve the
            # client's upload, so the connection ends here.
            self._linger()

    # Deadlines

    def _arm(self, delay: float, callback: Callable[[], object]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._phase != HEAD:
            return
        if self._head_bytes:
            timeout = self._limits.header_timeout
            message = f"The request headers did not arrive within {timeout:g} seconds."
            self._refuse(408, InvalidRequest(message, code="request_timeout"))
        else:
            self.give_way()

    def _body_stalled(self) -> None:
        self._timer = None
        if self._phase != BODY:
            return
        now = self.loop.time()
        if self.flow.read_paused:
            # The app has not taken what arrived yet: the wait is ours, not the client's.
            self._last_body = now
        remaining = self._last_body + self._limits.body_timeout - now
        if remaining > 0:
            self._arm(remaining, self._body_stalled)
            return
        log.debug("closing a connection whose request body stalled for %g s", self._limits.body_timeout)
        self._phase = DONE
        self.transport.close()

    # Refusing

    def _refuse(self, status: int, error: APIError) -> None:
        self.transport.write(refusal(status, error, self.server_state.default_headers))
        self._linger()

    def _linger(self) -> None:
        """Half-close, drop whatever still arrives, and close for good after a moment."""
        self._release_head()
        self.table.idle.pop(self, None)
        self._phase = DONE
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER_SECONDS, self.transport.close)


def guarded_protocol(table: ConnectionTable) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for one server, bound to that server's table."""

    class ServerProtocol(GuardedHttpToolsProtocol):
        pass

    ServerProtocol.table = table
    return ServerProtocol
