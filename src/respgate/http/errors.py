"""Every non-2xx answer is `{"error": {...}}` and every answer carries `x-request-id`.

Every 5xx is logged here, once, with its traceback but without exception messages (they can quote
what the client sent).
"""

from __future__ import annotations

import logging
import secrets

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from respgate.protocol.errors import APIError, Overloaded, log_safe_trace, server_error_body

log = logging.getLogger(__name__)


def json_response(body: object, status: int = 200, *, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: APIError) -> Response:
    return json_response(error.body(), error.status_code, headers=error.headers or None)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    if exc.status_code >= 500 and not isinstance(exc, Overloaded):
        log.error("%s %s answered %d: %s", request.method, request.url.path, exc.status_code, log_safe_trace(exc))
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = str(exc.detail)
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return json_response(body, exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    # The routes of one path are separate (one per method): the first to match would name only its own.
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    # The client left while sending its body (or the server's body timeout dropped it): nobody is
    # there to answer, and it is not a server fault, so it is not logged as one.
    log.info("%s %s: the client left before its request body was complete", request.method, request.url.path)
    return Response(status_code=400)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s", request.method, request.url.path, log_safe_trace(exc))
    return json_response(server_error_body(), 500)


class RequestIdMiddleware:
    """Adds `x-request-id` (the client's own if it sent one) to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = b""
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value[:128]
                break
        if not request_id:
            request_id = b"req_" + secrets.token_hex(16).encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        except Exception:
            # Starlette has answered it (`on_unexpected` logged it) and raises it again for the server
            # to log: that would log it twice, and with its message.
            return
