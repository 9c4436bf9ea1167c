"""A client that hangs up before its answer is ready: the work for it stops.

Streams notice a hang-up themselves (`EventStreamResponse`); this covers the wait before a stream's
first event and a whole non-streamed answer. Once a request's body has been read, the server's next
message on `receive` is `http.disconnect`, sent when the client closes the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive, Scope, Send

_T = TypeVar("_T")


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was ready; the work for it was cancelled."""


class NoAnswer:
    """What a route returns for a client that has gone: there is nobody to send anything to."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


async def unless_disconnected(receive: Receive, work: Awaitable[_T]) -> _T:
    """The result of `work`; if the client hangs up first, `work` is cancelled and ClientDisconnected raised.

    Call it only after the request body has been read in full.
    """

    async def run() -> _T:
        return await work

    task = asyncio.ensure_future(run())
    watch = asyncio.ensure_future(_hang_up(receive))
    left = False
    try:
        done, _ = await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
        left = task not in done
    finally:
        # Also when this wait is itself cancelled (server shutdown): the work goes with it.
        if not task.done():
            task.cancel()
        watch.cancel()
        await asyncio.gather(task, watch, return_exceptions=True)
    if left and (task.cancelled() or task.exception() is None):
        raise ClientDisconnected
    return task.result()


async def _hang_up(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
