"""HTTP plumbing shared by the remote providers: one aiohttp session, bounded SSE relaying, error translation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol

import aiohttp
import orjson

from respgate.config import ModelEntry
from respgate.protocol.errors import APIError, InvalidRequest, RateLimited, UpstreamError
from respgate.providers.base import Delta
from respgate.providers.sse import SSEEvent, SSEStream
from respgate.providers.timing import StreamClock, Timeouts, retry_after, retry_after_headers, try_again_in
from respgate.providers.upstream_settings import UpstreamSettings


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def error_message(body: bytes) -> str:
    """The human message inside an upstream error body, whatever its dialect (not shortened)."""
    data = _error_object(body)
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for key in ("message", "detail", "error"):
        if isinstance(data.get(key), str):
            return str(data[key])
    return body.decode("utf-8", "replace").strip()


def _error_code(body: bytes) -> str | None:
    error = _error_object(body).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


_MESSAGE_LIMIT = 500


class UpstreamStatus(Exception):
    """The upstream answered with a non-2xx status (translated by `Upstream.errors`)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers  # names in lower case


class MalformedUpstream(Exception):
    """The upstream sent data that does not follow its own wire format."""


def parse_json(data: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedUpstream(f"invalid JSON in an event: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedUpstream("an event's data is not a JSON object")
    return value


class StreamGuard:
    """Remembers whether a delta reached the engine (after that, a failure cannot be retried), and the
    call's deadlines."""

    __slots__ = ("clock", "yielded")

    def __init__(self, timeouts: Timeouts) -> None:
        self.yielded = False
        self.clock = StreamClock(timeouts)


# 404 means this deployment's base_url or upstream_model is wrong: the client cannot fix that, and
# another deployment may not share the mistake. A 429 that is not a rate limit is an exhausted quota:
# the operator's to fix, and another deployment may have one.
_RETRYABLE_STATUS = frozenset({404, 408, 409, 429})
_CLIENT_FAULT_STATUS = frozenset({400, 413, 422})


class Upstream:
    """One aiohttp session to one upstream, owned by a provider for the server's lifetime."""

    def __init__(self, *, model: str, base_url: str, headers: dict[str, str], timeout: Timeouts) -> None:
        self._model = model
        self._base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **headers}
        # Reads are bounded per call by its `StreamClock`, which knows whether the answer has started.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect)
        self.timeouts = timeout
        # Values that must never reach a log line or an error message.
        self._secrets = tuple(
            value for key, value in headers.items() if key.lower() in {"authorization", "x-api-key", "api-key"}
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @asynccontextmanager
    async def post_sse(
        self, path: str, body: dict[str, Any], deadline: Callable[[], float]
    ) -> AsyncIterator[SSEStream]:
        """POST a JSON body and stream the SSE answer; a non-2xx status raises `UpstreamStatus`.

        `deadline()` bounds every wait: for the status, for an error body, for each read of the stream.
        """
        if self._session is None:
            raise RuntimeError("provider used before start()")
        async with asyncio.timeout_at(deadline()):
            response = await self._session.post(self._base_url + path, data=orjson.dumps(body))
        async with response:
            if response.status >= 300:
                async with asyncio.timeout_at(deadline()):
                    raw = await response.read()
                headers = {key.lower(): value for key, value in response.headers.items()}
                raise UpstreamStatus(response.status, raw, headers)
            if not response.content_type.startswith("text/event-stream"):
                raise MalformedUpstream(f"expected an event stream, got {response.content_type or 'no type'}")
            yield SSEStream(response.content, deadline=deadline)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            for variant in (secret, secret.removeprefix("Bearer ")):
                if variant:
                    text = text.replace(variant, "[redacted]")
        return text

    def _scrub_message(self, exc: APIError) -> None:
        """Redact any credential in `exc`'s message: upstreams do echo keys in their errors."""
        clean = self._scrub(exc.message)
        if clean != exc.message:
            exc.message = clean
            exc.args = (clean,)

    def _status_error(self, exc: UpstreamStatus) -> APIError:
        status = exc.status
        if status in (401, 403):
            return UpstreamError(
                f"The upstream of model '{self._model}' refused this deployment's credentials (HTTP {status}).",
                retryable=False,
                upstream_status=status,
            )
        if status == 429 and _error_code(exc.body) != "insufficient_quota":
            return self._rate_limited(exc)
        # Redact before shortening, so that a cut never leaves part of a key unrecognised.
        message = self._scrub(error_message(exc.body))[:_MESSAGE_LIMIT] or f"HTTP {status}"
        if status in _CLIENT_FAULT_STATUS:
            return InvalidRequest(f"Upstream rejected the request: {message}", code="upstream_rejected")
        return UpstreamError(
            f"The upstream of model '{self._model}' failed (HTTP {status}): {message}",
            retryable=status >= 500 or status in _RETRYABLE_STATUS,
            upstream_status=status,
        )

    def _rate_limited(self, exc: UpstreamStatus) -> RateLimited:
        """A 429 as OpenAI words it, with the upstream's own wait (the message says it as Codex parses it).

        The upstream's text is left out: it names the operator's account and limits, not the client's.
        """
        seconds = retry_after(exc.headers)
        when = "later" if seconds is None else f"in {try_again_in(seconds)}"
        return RateLimited(
            f"Rate limit reached for {self._model}. Please try again {when}.",
            retry_after=seconds,
            headers=None if seconds is None else retry_after_headers(exc.headers, seconds),
        )

    @contextmanager
    def errors(self, guard: StreamGuard) -> Iterator[None]:
        """Translate every failure of one call into our hierarchy (retryable only before any delta)."""
        try:
            yield
        except UpstreamError as exc:
            if exc.retryable and guard.yielded:
                raise UpstreamError(
                    self._scrub(exc.message), retryable=False, upstream_status=exc.upstream_status, code=exc.code
                ) from exc
            self._scrub_message(exc)
            raise
        except APIError as exc:
            # In-stream errors carry the upstream's own words.
            self._scrub_message(exc)
            raise
        except UpstreamStatus as exc:
            raise self._status_error(exc) from exc
        except (MalformedUpstream, orjson.JSONDecodeError) as exc:
            raise UpstreamError(
                f"The upstream of model '{self._model}' sent malformed data: {self._scrub(str(exc))}",
                retryable=not guard.yielded,
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamError(
                f"The upstream of model '{self._model}' could not be reached: connecting timed out "
                "(timeout.connect).",
                retryable=not guard.yielded,
            ) from exc
        except TimeoutError as exc:
            raise UpstreamError(
                f"The upstream of model '{self._model}' {guard.clock.expired(started=guard.yielded)}.",
                retryable=not guard.yielded,
            ) from exc
        except aiohttp.ClientError as exc:
            what = "could not be reached" if isinstance(exc, aiohttp.ClientConnectionError) else "failed"
            if guard.yielded:
                what = "broke off the stream"
            raise UpstreamError(
                f"The upstream of model '{self._model}' {what}: {self._scrub(type(exc).__name__)}.",
                retryable=not guard.yielded,
            ) from exc


def tag_reasoning(provider: str, blob: str) -> str:
    """Mark an opaque reasoning blob minted by a non-OpenAI backend, so only that backend replays it.

    OpenAI's own `encrypted_content` is passed as-is (base64, never a colon); foreign blobs carry
    `respgate.<provider>:` so that other providers can recognise and drop them.
    """
    return f"respgate.{provider}:{blob}"


def untag_reasoning(blob: str) -> tuple[str | None, str]:
    """`(provider, blob)` for a tagged blob, `(None, blob)` for an OpenAI one."""
    if blob.startswith("respgate.") and ":" in blob:
        prefix, _, rest = blob.partition(":")
        return prefix.removeprefix("respgate."), rest
    return None, blob


class EventReader(Protocol):
    """Turns one provider's parsed SSE events into neutral deltas."""

    @property
    def finishing(self) -> bool:
        """The answer's finish has come: what may still follow (usage, an end event) is not essential."""
        ...

    @property
    def finished(self) -> bool:
        """The provider's last event has come: nothing more is read."""
        ...

    def read(self, event: dict[str, Any]) -> Iterable[Delta]: ...

    def end(self) -> Iterable[Delta]:
        """What is only complete once the stream is over (usage, the finish); called only when finishing."""
        ...


class UpstreamProvider:
    """What the HTTP providers share: one `Upstream` session for the server's lifetime, and relaying."""

    def __init__(
        self,
        *,
        entry: ModelEntry,
        settings: UpstreamSettings,
        auth: Callable[[str], dict[str, str]],
        protocol_headers: dict[str, str] | None = None,
    ) -> None:
        headers = {**(protocol_headers or {}), **settings.headers}
        if key := settings.resolved_api_key(entry.name):
            headers.update(auth(key))
        self._upstream = Upstream(
            model=entry.name, base_url=settings.base_url, headers=headers, timeout=settings.timeout
        )

    async def start(self) -> None:
        await self._upstream.start()

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def _relay(
        self, path: str, body: dict[str, Any], reader: EventReader, *, last: str
    ) -> AsyncIterator[Delta]:
        """POST `body` and yield what `reader` makes of each event, until its last event or the end.

        A stream that ends (or breaks off, or falls silent) before `reader` saw the finish fails,
        naming `last`; after the finish it is complete, whatever is missing of its tail.
        """
        guard = StreamGuard(self._upstream.timeouts)

        def deadline() -> float:
            return guard.clock.deadline(started=guard.yielded, finishing=reader.finishing)

        with self._upstream.errors(guard):
            async with self._upstream.post_sse(path, body, deadline) as events:
                while not reader.finished and (event := await _next_event(events, reader)) is not None:
                    for delta in reader.read(parse_json(event.data)):
                        guard.yielded = True
                        yield delta
            if not reader.finishing:
                raise MalformedUpstream(f"the stream ended without {last}")
            for delta in reader.end():
                guard.yielded = True
                yield delta


async def _next_event(events: SSEStream, reader: EventReader) -> SSEEvent | None:
    """The next event; None at the end, including a tail that fell silent or broke off after the finish."""
    finishing = reader.finishing
    try:
        event = await anext(events, None)
    except (TimeoutError, aiohttp.ClientError):
        if finishing:
            return None
        raise
    # OpenAI-style servers close with `data: [DONE]`, which is not an event.
    if event is None or event.data.strip() == "[DONE]":
        return None
    return event


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
