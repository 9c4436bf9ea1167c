"""Admission: how much work one server process takes on at once, and the fast refusal past that.

Past its capacity a server that queues makes every request wait, until clients give up while the
work for them still runs and is stored. Refusing the excess at once (503 with `Retry-After`, which
the OpenAI SDKs retry) keeps the answers that are served fast and costs the refused ones almost
nothing. New work is refused while:
- foreground generations in progress (streamed or not) are at their cap: memory and upstream
  connections stay bounded;
- the event loop runs late: there are more requests than CPU, and each one admitted would wait
  behind all the others at every step;
- the store's backlog (operations waiting for a connection or a commit, or running) is at its cap:
  a database that falls behind stops new work from starting, instead of finished work piling up
  in front of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from respgate.protocol.errors import Overloaded

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Refusals come in floods: one warning per interval, with the count since the last one.
_LOG_INTERVAL = 10.0


class LoopLag:
    """How late this event loop runs, sustained: about zero when it keeps up, the length of its backlog when not.

    A timer re-arms itself every `interval` (no task, so nothing to wait for at shutdown) and notes how
    late it ran. `seconds` is the lesser of the last two: one slow step (a collection, a cold import)
    makes one timer late and is over by the time anyone reads it; a loop with more work than CPU makes
    every timer late.
    """

    def __init__(self, *, interval: float = 0.05) -> None:
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self._interval
        self._handle = loop.call_at(due, self._tick, loop, due)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._last = self.seconds = 0.0

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        late = max(0.0, now - due)
        self.seconds = min(late, self._last)
        self._last = late
        self._handle = loop.call_at(now + self._interval, self._tick, loop, now + self._interval)


class Admission:
    def __init__(
        self,
        *,
        max_generations: int,
        max_store_queue: int,
        max_loop_lag: float,
        store_backlog: Callable[[], int],
        retry_after: float,
    ) -> None:
        self._max_generations = max_generations
        self._max_store_queue = max_store_queue
        self._max_loop_lag = max_loop_lag
        self.loop_lag = LoopLag()
        self._store_backlog = store_backlog
        self._retry_after = retry_after
        self._generations = 0
        self._refused = 0
        self._next_log = 0.0

    @property
    def generations(self) -> int:
        """Foreground generations in progress in this process."""
        return self._generations

    def check(self) -> None:
        """Raise `Overloaded` while this process is short of CPU or its store is behind: no new work of any kind."""
        if self.loop_lag.seconds > self._max_loop_lag:
            raise self._refuse("it is short of CPU")
        if self._store_backlog() >= self._max_store_queue:
            raise self._refuse("the response store is behind")

    def admit(self) -> Slot:
        """A generation slot, to be released when the generation ends; `Overloaded` when there is none."""
        if self._generations >= self._max_generations:
            raise self._refuse("too many responses are being generated")
        self._generations += 1
        return Slot(self)

    def _release(self) -> None:
        self._generations -= 1

    def _refuse(self, reason: str) -> Overloaded:
        self._refused += 1
        now = time.monotonic()
        if now >= self._next_log:
            log.warning(
                "overloaded: %s (generations %d/%d, loop lag %.3f s, store backlog %d/%d); "
                "%d requests refused since the last report",
                reason,
                self._generations,
                self._max_generations,
                self.loop_lag.seconds,
                self._store_backlog(),
                self._max_store_queue,
                self._refused,
            )
            self._refused = 0
            self._next_log = now + _LOG_INTERVAL
        return Overloaded(
            f"The server is overloaded: {reason}. Please try again in {self._retry_after:g}s.",
            retry_after=self._retry_after,
        )


class Slot:
    """One admitted generation. `release` is idempotent, so every path that ends the work may call it."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission

    def release(self) -> None:
        if self._admission is not None:
            self._admission._release()
            self._admission = None

    async def hold(self, batches: AsyncIterator[_T]) -> AsyncIterator[_T]:
        """`batches` as they come; the slot is released once they have ended, failed or been closed.

        A generator only runs its clean-up if it was started: whoever creates this and may not start
        it calls `release` on its own failure paths.
        """
        try:
            async for batch in batches:
                yield batch
        finally:
            try:
                aclose = getattr(batches, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self.release()
