"""The one error hierarchy; every error maps to an OpenAI-shaped body `{"error": {...}}`."""

from __future__ import annotations

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
