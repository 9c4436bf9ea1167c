"""A background response running in this process: its events so far, followed live by its clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from respgate.engine.events import Event
from respgate.engine.prepared import Prepared

# The statuses of a background response that has not ended: it has a job some process will end.
UNFINISHED = ("queued", "in_progress")


class Job:
    """One background response running in this process: its events so far, and who waits for more."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.events: list[Event] = []
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        # Why it was stopped, if it was: a cancel the client asked for, or a hand-off to another process.
        self.cancel_requested = False
        self.handed_off = False
        self._changed = asyncio.Condition()

    async def push(self, batch: list[Event]) -> None:
        async with self._changed:
            self.events.extend(batch)
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self.finished = True
            self._changed.notify_all()

    def stop(self, *, hand_off: bool) -> None:
        """Stop the run: cancelled as the client asked (stored so), or handed off (nothing stored)."""
        if self.finished or self.cancel_requested or self.handed_off or self.task is None or self.task.done():
            return  # ended, or already stopping: a second cancel would interrupt what the first one stores
        if hand_off:
            self.handed_off = True
        else:
            self.cancel_requested = True
        self.task.cancel()

    def snapshot(self) -> dict[str, Any] | None:
        """The response as it stands: the latest lifecycle snapshot plus the items finished so far."""
        for event in reversed(self.events):
            if "response" in event:
                response: dict[str, Any] = event["response"]
                if response["status"] not in UNFINISHED:
                    return response
                done = [item["item"] for item in self.events if item["type"] == "response.output_item.done"]
                return {**response, "output": done}
        return None

    async def follow(self, after: int = -1) -> AsyncIterator[list[Event]]:
        """Events with `sequence_number > after`, as they come, until the job ends."""
        position = max(after + 1, 0)
        while True:
            async with self._changed:
                while len(self.events) <= position and not self.finished:
                    await self._changed.wait()
                batch = self.events[position:]
                done = self.finished
            position += len(batch)
            if batch:
                yield batch
            if done and position >= len(self.events):
                return
