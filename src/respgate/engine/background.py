"""Background responses: run after the HTTP answer, followed live, cancelled on request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from respgate.engine.events import Event
from respgate.engine.service import Prepared, ResponsesService

log = logging.getLogger(__name__)


class Job:
    """One background response running in this process: its events so far, and who waits for more."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.events: list[Event] = []
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def push(self, batch: list[Event]) -> None:
        async with self._changed:
            self.events.extend(batch)
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self.finished = True
            self._changed.notify_all()

    def snapshot(self) -> dict[str, Any] | None:
        """The response as it stands: the latest lifecycle snapshot plus the items finished so far."""
        for event in reversed(self.events):
            if "response" in event:
                response: dict[str, Any] = event["response"]
                if response["status"] not in ("queued", "in_progress"):
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


class BackgroundJobs:
    def __init__(self, *, service: ResponsesService) -> None:
        self._service = service
        self._jobs: dict[str, Job] = {}

    def get(self, response_id: str, owner: str) -> Job | None:
        job = self._jobs.get(response_id)
        return job if job is not None and job.prepared.owner == owner else None

    async def submit(self, prepared: Prepared) -> tuple[dict[str, Any], Job]:
        """Store the response as queued, start the work, and return the queued response."""
        queued = await self._service.enqueue(prepared)
        job = Job(prepared)
        self._jobs[prepared.response_id] = job
        job.task = asyncio.create_task(self._run(job), name=f"background {prepared.response_id}")
        return queued, job

    async def _run(self, job: Job) -> None:
        try:
            async for batch in self._service.run(job.prepared):
                await job.push(batch)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("background response %s failed", job.prepared.response_id)
        finally:
            await job.close()
            self._jobs.pop(job.prepared.response_id, None)

    async def cancel(self, job: Job) -> None:
        """Stop the work; the service stores the response as cancelled with what it had produced."""
        if job.task is not None and not job.task.done():
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task

    async def aclose(self) -> None:
        for job in list(self._jobs.values()):
            await self.cancel(job)
