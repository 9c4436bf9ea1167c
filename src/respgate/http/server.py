"""The HTTP server, built in one place for `respgate serve` and the live tests.

uvicorn runs the app over the guarded httptools protocol of `connections.py`, which adds header, body
and idle deadlines, a header size limit and a connection cap. Websockets are off: the API has none,
and an upgraded connection would leave the guarded protocol.
"""

from __future__ import annotations

import logging
import resource

import uvicorn
from starlette.types import ASGIApp

from respgate.config import ServerSettings
from respgate.http.connections import ConnectionTable, guarded_protocol

log = logging.getLogger(__name__)

# How long a shutdown waits for requests in flight before cancelling them.
GRACEFUL_SHUTDOWN_SECONDS = 5


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit, as Go programs do at start; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def connection_cap(settings: ServerSettings, fd_limit: int) -> tuple[int, int]:
    """(cap, hard cap) on client connections under `fd_limit` open files.

    Up to `reserved_fds` (at most half the limit) stay free for the store, the upstreams and the log;
    half of that reserve may go to connections that only receive a 503, past which they are reset.
    """
    reserve = min(settings.reserved_fds, fd_limit // 2)
    cap = max(1, min(settings.max_connections, fd_limit - reserve))
    return cap, cap + reserve // 2


def build_server(
    app: ASGIApp, settings: ServerSettings, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info"
) -> uvicorn.Server:
    """A uvicorn server for `app` on the guarded protocol (run it with `await server.serve()`)."""
    fd_limit = raise_fd_limit()
    cap, hard_cap = connection_cap(settings, fd_limit)
    log.info("accepting up to %d connections (open file limit %d)", cap, fd_limit)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(ConnectionTable(settings, cap=cap, hard_cap=hard_cap)),
        ws="none",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=settings.idle_timeout,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return uvicorn.Server(config)
