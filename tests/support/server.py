"""The real server (`respgate.http.server`, as `respgate serve` builds it) on a free loopback port,
running the app in a background thread on uvloop.

The in-process ASGI transport buffers whole bodies and never hangs up mid-stream; this one speaks
real HTTP, so streaming, keep-alives and client disconnects behave as in production.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
import uvloop

from respgate.config import Settings
from respgate.http.app import Gateway, create_app
from respgate.http.server import build_server
from respgate.providers.registry import build_provider


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._run, name=f"respgate-{self.port}", daemon=True)
        self._failure: BaseException | None = None
        self.gateway: Gateway | None = None

    def _run(self) -> None:
        try:
            uvloop.run(self._serve())
        except BaseException as exc:  # reported to the test thread by __enter__/__exit__
            self._failure = exc

    async def _serve(self) -> None:
        gateway = self.gateway = await Gateway.open(self.settings, build_provider=build_provider)
        app = create_app(gateway, manage=True)
        self._server = build_server(app, self.settings.server, log_level="warning")
        await self._server.serve(sockets=[self._socket])

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self._server is not None and self._server.started):
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError("the live server did not start") from self._failure
            if time.monotonic() > deadline:
                raise RuntimeError("the live server did not start within 30 s")
            time.sleep(0.01)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()
        if self._failure is not None:
            raise RuntimeError("the live server failed") from self._failure
