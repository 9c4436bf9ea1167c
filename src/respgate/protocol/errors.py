"""The one error hierarchy; every error maps to an OpenAI-shaped body `{"error": {...}}`."""

from __future__ import annotations

import math
from typing import Any


class APIError(Exception):
    """An error that reaches the client as `{"error": {"message", "type", "param", "code"}}`."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with this error's answer."""
        return {}


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
    status_code = 429
    error_type = "requests"


class ServerError(APIError):
    status_code = 500
    error_type = "server_error"


class Overloaded(APIError):
    """This server process is at one of its capacity limits: the same request may succeed after `retry_after` s.

    503, as OpenAI answers when its own servers are overloaded; 429 would tell the client that its key
    is over a quota, which it is not. The SDKs retry both and honour `retry-after-ms` and `Retry-After`;
    a proxy in front can pass a 503 on to another replica.
    """

    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, code="server_overloaded")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {
            "retry-after": str(max(1, math.ceil(self.retry_after))),
            "retry-after-ms": str(max(1, round(self.retry_after * 1000))),
        }


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
