"""Group commit for SQLite: the writes that arrive while one transaction runs share the next one.

SQLite has one writer per file, and each commit through aiosqlite costs several thread hops. Under
load, queueing writers one transaction each makes them wait for each other; batching them keeps the
promise each caller needs (its write is committed when `submit` returns) at a fraction of the cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Write:
    """One caller's statements (SQL, arguments), run in order; `conflict` aborts it if the first touches no row."""

    statements: Sequence[tuple[str, Sequence[Any]]]
    conflict: str | None
    done: asyncio.Future[list[int]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    def __init__(self, run: Callable[[list[Write]], Awaitable[None]]) -> None:
        """`run` executes a batch in one transaction and settles every write's `done`."""
        self._run = run
        self._queue: list[Write] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, write: Write) -> list[int]:
        self._queue.append(write)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        # A caller that stops waiting does not withdraw its write: it is committed all the same.
        return await asyncio.shield(write.done)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await self._run(batch)
            except BaseException as exc:
                for write in batch:
                    if not write.done.done():
                        write.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def aclose(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
