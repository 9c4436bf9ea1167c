"""The one error hierarchy; every error maps to an OpenAI-shaped body `{"error": {...}}`."""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping
from typing import Any


class APIError(Exception):
    """An error that reaches the client as `{"error": {"message", "type", "param", "code"}}`.

    `headers` go out with the HTTP answer (e.g. `Retry-After`).
    """

    status_code = 500
    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(APIError):
    status_code = 401
    error_type = "invalid_request_error"


class NotFound(APIError):
    status_code = 404
    error_type = "invalid_request_error"


class PayloadTooLarge(APIError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimited(APIError):
    """Too many requests; `retry_after`: the seconds to wait, when known (it is also in `headers`)."""

    status_code = 429
    error_type = "requests"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = "rate_limit_exceeded",
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, headers=headers)
        self.retry_after = retry_after


class ServerError(APIError):
    status_code = 500
    error_type = "server_error"


class Overloaded(APIError):
    """This server process is at one of its capacity limits: the same request may succeed after `retry_after` s.

    503, as OpenAI answers when its own servers are overloaded; 429 would tell the client that its key
    is over a quota, which it is not. The SDKs retry both and honour `retry-after-ms` and `Retry-After`;
    a proxy in front can pass a 503 on to another replica. A refusal is deliberate and comes in floods:
    it is not logged as a server fault (admission logs a count instead).
    """

    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(
            message,
            code="server_overloaded",
            headers={
                "retry-after": str(max(1, math.ceil(retry_after))),
                "retry-after-ms": str(max(1, round(retry_after * 1000))),
            },
        )
        self.retry_after = retry_after


class UpstreamError(APIError):
    """An upstream failed in a way the client could not have prevented (connect, timeout, 5xx)."""

    status_code = 502
    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        upstream_status: int | None = None,
        code: str | None = "upstream_error",
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.upstream_status = upstream_status


class GenerationFailed(APIError):
    """The model produced something the server must not pass on (e.g. arguments that fail the schema)."""

    status_code = 500
    error_type = "server_error"


def server_error_body() -> dict[str, Any]:
    """The body sent for an unexpected fault: the trace goes to the log, never to the client."""
    return ServerError("The server had an error while processing your request. Sorry about that!").body()


def log_safe(exc: BaseException) -> str:
    """`exc` for a log line: its type and code, never its message (messages can quote client content)."""
    name = type(exc).__qualname__
    if isinstance(exc, UpstreamError) and exc.upstream_status is not None:
        return f"{name}(status={exc.status_code}, code={exc.code}, upstream_status={exc.upstream_status})"
    if isinstance(exc, APIError):
        return f"{name}(status={exc.status_code}, code={exc.code})"
    return name


def log_safe_trace(exc: BaseException) -> str:
    """The traceback of `exc` and of its causes, with the type of each exception but not its message.

    A message can hold what a client sent (a validation error quoting a value, a failed SQL statement's
    parameters, an upstream echoing the prompt); the frames say where it failed, which is what a log
    needs.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    blocks: list[str] = []
    for error in reversed(chain):
        frames = "".join(traceback.format_tb(error.__traceback__))
        blocks.append(f"Traceback (most recent call last):\n{frames}{type(error).__module__}.{log_safe(error)}")
    return "\n\nwhich led to\n\n".join(blocks)
