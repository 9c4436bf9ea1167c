"""Background responses: owned through a lease in the database, followed live, cancelled from anywhere.

A background response is a job in the job store before its `queued` response is stored, and the job is
deleted only once the response's final state is stored. While a process runs a job it renews the lease
every heartbeat; when the process dies the lease runs out, and any live process claims the job and runs
it again from its input (same id and `created_at`, a fresh generation), or marks it failed once it has
been started `max_attempts` times. At shutdown, jobs still running after the grace period are released
at once (not stored as cancelled) so another process takes them over.

A client following a response that a dead process was running loses its connection; following it again
(`GET ?stream=true&starting_after=N` on any live process) gets the events after N of the run that ends
it, which starts again from the input: its output is not a continuation of what the dead run had sent,
and its terminal event carries the whole response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

from respgate.config import BackgroundSettings
from respgate.engine.builder import EventBuilder
from respgate.engine.events import Event
from respgate.engine.live import UNFINISHED, Job
from respgate.engine.prepared import Prepared
from respgate.engine.service import ResponsesService
from respgate.protocol.errors import APIError, ServerError
from respgate.storage.base import BackgroundJob, JobStore, ResponseStore, StoredResponse

log = logging.getLogger(__name__)

# How often a client following a response that runs in another process looks at the store.
_FOLLOW_POLL_SECONDS = 1.0


class BackgroundJobs:
    """This process's share of the background work: what it runs, and the loop that keeps its leases."""

    def __init__(
        self,
        *,
        service: ResponsesService,
        store: ResponseStore,
        jobs: JobStore,
        settings: BackgroundSettings,
    ) -> None:
        self._service = service
        self._store = store
        self._jobs = jobs
        self._settings = settings
        self._holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        # Jobs whose lease this process holds and renews (each takes a slot), jobs being queued with a slot
        # kept for them (their lease not yet written), and the jobs running here.
        self._held: set[str] = set()
        self._starting: set[str] = set()
        self._running: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._resumes: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._draining = False
        self._renewed_at = time.monotonic()
        self._maintainer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start keeping leases and taking over work (needs the running event loop)."""
        if self._maintainer is None:
            self._maintainer = asyncio.create_task(self._maintain(), name="background leases")

    def get(self, response_id: str, owner: str) -> Job | None:
        """The job if it runs in this process (else it runs elsewhere, waits, or has ended)."""
        job = self._running.get(response_id)
        return job if job is not None and job.prepared.owner == owner else None

    async def submit(self, prepared: Prepared) -> dict[str, Any]:
        """Queue the work (run here if a slot is free, else left to any process) and return the queued response."""
        response_id = prepared.response_id
        runs_here = not self._draining and self._free_slots() > 0
        if runs_here:
            self._starting.add(response_id)
        job = BackgroundJob(
            response_id=response_id,
            owner=prepared.owner,
            created_at=prepared.created_at,
            request=_resumable_request(prepared),
        )
        try:
            # Held from the start, so that no process claims it before its queued response is stored (and
            # then drops it as never acknowledged, which is what it does if this process dies right here).
            await self._jobs.add(job, holder=self._holder, lease_seconds=self._lease)
        finally:
            self._starting.discard(response_id)
        if runs_here:
            self._held.add(response_id)
        try:
            queued = await self._service.enqueue(prepared)
        except BaseException:
            self._held.discard(response_id)
            raise
        if runs_here:
            self._run(prepared)
        else:
            try:
                await self._jobs.release(self._holder, [response_id], refund=True)
            except ServerError as exc:
                log.warning("background response %s waits for its lease to run out: %s", response_id, exc)
        return queued

    async def follow(self, response_id: str, owner: str, after: int = -1) -> AsyncIterator[list[Event]]:
        """Events after `after` until the response ends: live from a run in this process; for a run in
        another process (or one waiting for a slot), the stored events once the store shows it ended."""
        position = after
        while True:
            job = self.get(response_id, owner)
            if job is not None:
                async for batch in job.follow(position):
                    position = batch[-1]["sequence_number"]
                    yield batch
                if not job.handed_off:
                    return
                continue
            record = await self._store.get(response_id, owner)
            if record is None:
                return
            if record.status not in UNFINISHED:
                events = await self._store.events(response_id, owner) or []
                if tail := [event for event in events if event["sequence_number"] > position]:
                    yield tail
                return
            await asyncio.sleep(min(_FOLLOW_POLL_SECONDS, self._settings.heartbeat_seconds))

    async def cancel(self, response_id: str, owner: str) -> None:
        """Cancel the response wherever it runs or waits; return once it is stored as ended (or, if its
        holder does not answer, once that holder's lease would have run out and been taken over)."""
        job = self.get(response_id, owner)
        if job is not None:
            job.stop(hand_off=False)
            if job.task is not None:
                await asyncio.wait([job.task])
            return
        outcome = await self._jobs.cancel(response_id, owner, holder=self._holder, lease_seconds=self._lease)
        if outcome == "taken":
            await self._settle(response_id, owner, error=None)
        elif outcome == "requested":
            deadline = time.monotonic() + self._lease + 2 * self._settings.heartbeat_seconds
            while time.monotonic() < deadline:
                record = await self._store.get(response_id, owner)
                if record is None or record.status not in UNFINISHED:
                    return
                await asyncio.sleep(min(_FOLLOW_POLL_SECONDS, self._settings.heartbeat_seconds))

    async def aclose(self) -> None:
        """Stop taking work; give running jobs the grace period, then hand the rest to other processes."""
        self._draining = True
        running = [job.task for job in self._running.values() if job.task is not None]
        if running and self._settings.grace_seconds > 0:
            grace = self._settings.grace_seconds
            log.info("waiting up to %g s for %d running background responses to finish", grace, len(running))
            await asyncio.wait(running, timeout=grace)
        for job in list(self._running.values()):
            job.stop(hand_off=True)
        for task in list(self._resumes):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._maintainer is not None:
            self._maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintainer
        left = sorted(self._held)
        self._held.clear()
        if left:
            log.info("handing %d running background responses over to other processes", len(left))
            try:
                await self._jobs.release(self._holder, left, refund=True)
            except ServerError as exc:
                log.warning("could not release background work (%s); it is taken over when its lease ends", exc)

    @property
    def _lease(self) -> float:
        return self._settings.lease_seconds

    # -- running --------------------------------------------------------------------------------------------

    def _run(self, prepared: Prepared) -> Job:
        job = Job(prepared)
        self._running[prepared.response_id] = job
        job.task = self._spawn(self._execute(job), f"background {prepared.response_id}")
        return job

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _execute(self, job: Job) -> None:
        prepared = job.prepared
        try:
            # `run` is an async generator: closed here, so a stop reaches it while its job is still known.
            run = cast(AsyncGenerator[list[Event]], self._service.run(prepared, handed_off=lambda: job.handed_off))
            async with contextlib.aclosing(run) as batches:
                async for batch in batches:
                    await job.push(batch)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("background response %s failed", prepared.response_id)
        finally:
            await job.close()
            self._running.pop(prepared.response_id, None)
        if job.handed_off:
            return
        await self._after_run(prepared.response_id, prepared.owner, cancelled=job.cancel_requested)

    async def _after_run(self, response_id: str, owner: str, *, cancelled: bool) -> None:
        """Finish the job whose final state the run stored; if it stored none (a store failure, a cancel
        before the first token), store it cancelled as asked, or leave it to be run again."""
        self._held.discard(response_id)  # ending: no more renewals
        try:
            record = await self._store.get(response_id, owner)
            if record is not None and record.status in UNFINISHED:
                if cancelled:
                    await self._settle(response_id, owner, error=None)
                    return
                log.warning("background response %s ended unstored; it will be run again", response_id)
                await self._jobs.release(self._holder, [response_id], refund=False)
            else:
                await self._jobs.finish(self._holder, response_id)
        except ServerError as exc:
            log.warning("background response %s: %s; its lease will run out and be taken over", response_id, exc)
        finally:
            self._wake.set()  # a slot is free

    async def _settle(self, response_id: str, owner: str, *, error: APIError | None) -> None:
        """Store a response nobody runs as failed with `error` (else cancelled), then finish its job."""
        self._held.discard(response_id)
        try:
            record = await self._store.get(response_id, owner)
            if record is not None and record.status in UNFINISHED:
                await self._store.save(*_ended(record, error))
            await self._jobs.finish(self._holder, response_id)
        except ServerError as exc:
            log.warning("background response %s: %s; its lease will run out and be taken over", response_id, exc)
        finally:
            self._wake.set()

    async def _resume(self, claimed: BackgroundJob) -> None:
        """Run a claimed job again from its input, or end it if it cannot or need not run."""
        response_id, owner = claimed.response_id, claimed.owner
        try:
            record = await self._store.get(response_id, owner)
            if record is None or record.status not in UNFINISHED:
                # Never acknowledged, deleted, or ended by a process that died before letting go.
                self._held.discard(response_id)
                await self._jobs.finish(self._holder, response_id)
                self._wake.set()
                return
        except ServerError as exc:
            log.warning("background response %s: %s; its lease will run out and be taken over", response_id, exc)
            self._held.discard(response_id)
            self._wake.set()
            return
        error = _not_resumable(claimed, self._settings.max_attempts)
        if claimed.cancel_requested or error is not None:
            await self._settle(response_id, owner, error=error)
            return
        assert claimed.request is not None
        try:
            prepared = await self._service.prepare(
                claimed.request, owner=owner, response_id=response_id, created_at=claimed.created_at
            )
        except APIError as exc:
            await self._settle(response_id, owner, error=exc)
            return
        if self._draining or response_id not in self._held:
            return  # shutting down (the job is released with the rest), or the lease was lost meanwhile
        if claimed.attempts > 1:
            log.warning("running background response %s again (attempt %d)", response_id, claimed.attempts)
        self._run(prepared)

    # -- leases ---------------------------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Renew leases every heartbeat; take over waiting or abandoned jobs whenever a slot is free."""
        heartbeat = self._settings.heartbeat_seconds
        next_beat = time.monotonic()
        while True:
            self._wake.clear()
            if time.monotonic() >= next_beat:
                await self._guarded("renew leases", self._beat)
                next_beat = time.monotonic() + heartbeat
            if not self._draining:
                await self._guarded("claim work", self._claim)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_beat - time.monotonic())):
                    await self._wake.wait()

    async def _guarded(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except ServerError as exc:
            log.warning("background work: could not %s: %s", what, exc)
        except Exception:
            # The loop must outlive any one failure: without it, this process's leases run out.
            log.exception("background work: could not %s", what)

    async def _beat(self) -> None:
        held = sorted(self._held)
        try:
            renewed = await self._jobs.renew(self._holder, held, lease_seconds=self._lease)
        except ServerError:
            if time.monotonic() - self._renewed_at > self._lease:
                # Another process may have taken these over by now: stop rather than run them twice.
                for response_id in held:
                    self._lost(response_id)
            raise
        self._renewed_at = time.monotonic()
        for response_id in held:
            if response_id not in renewed:
                self._lost(response_id)
            elif renewed[response_id] and (job := self._running.get(response_id)) is not None:
                job.stop(hand_off=False)

    def _lost(self, response_id: str) -> None:
        if response_id not in self._held:
            return  # it ended meanwhile
        log.warning("lost the lease on background response %s; another process runs it", response_id)
        self._held.discard(response_id)
        if (job := self._running.get(response_id)) is not None:
            job.stop(hand_off=True)

    def _free_slots(self) -> int:
        return self._settings.concurrency - len(self._held) - len(self._starting)

    async def _claim(self) -> None:
        free = self._free_slots()
        if free < 1:
            return
        for claimed in await self._jobs.claim(self._holder, limit=free, lease_seconds=self._lease):
            self._held.add(claimed.response_id)
            task = self._spawn(self._resume(claimed), f"resume {claimed.response_id}")
            self._resumes.add(task)
            task.add_done_callback(self._resumes.discard)


def _resumable_request(prepared: Prepared) -> dict[str, Any]:
    """The validated request with its input items as stored (with their ids), to run it again as it was."""
    body = prepared.request.model_dump(mode="json", by_alias=True, exclude_unset=True)
    body["input"] = prepared.input_items
    return body


def _not_resumable(claimed: BackgroundJob, max_attempts: int) -> APIError | None:
    if claimed.request is None:
        return ServerError(
            "The server process running this background response stopped, and the response was queued by "
            "a version of the server that cannot run it again."
        )
    if claimed.attempts > max_attempts:
        tries = f"{max_attempts} attempt{'s' if max_attempts > 1 else ''}"
        return ServerError(
            f"Every server process that ran this background response stopped before it finished ({tries}); "
            "it is not run again."
        )
    return None


def _ended(record: StoredResponse, error: APIError | None) -> tuple[StoredResponse, list[Event]]:
    """A response that is not running, ended: failed with `error`, else cancelled; with its events."""
    builder = EventBuilder({**record.response, "status": "in_progress"}, tools=[])
    builder.opening(queued=True)
    if error is not None:
        builder.fail(error)
    else:
        builder.cancel()
    assert builder.final is not None
    return replace(record, status=builder.final["status"], response=builder.final), builder.events
