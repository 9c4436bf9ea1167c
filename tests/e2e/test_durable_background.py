"""Background work survives its process: real server processes on one database, killed with SIGKILL or
stopped with SIGTERM; the official SDK as the client. Leases are short here so that the tests wait
seconds, not the default half minute; every wait is for an outcome, with a generous deadline.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from openai.types.responses import Response
from support.events import check_stream
from support.harness import KEY_A, KEY_B, scripted
from support.processes import ServerProcess, Servers, database_for
from support.sse import parse_sse

SLOW_TEXT = " ".join(f"s{n}" for n in range(60))  # 60 tokens: 3 s
LONG_TEXT = " ".join(f"l{n}" for n in range(100))  # 100 tokens: 10 s
# The process that is killed (or stopped) generates slowly, so that it dies mid-run; the one that takes
# over is configured to generate the same answers fast, so that the tests wait for the take-over only.
SLOW = [scripted("slow", {"text": SLOW_TEXT}, delay=0.05), scripted("long", {"text": LONG_TEXT}, delay=0.1)]
FAST = [scripted("slow", {"text": SLOW_TEXT}, delay=0.005), scripted("long", {"text": LONG_TEXT}, delay=0.005)]
DEADLINE = 120.0


def settings(models: list[dict[str, Any]] = SLOW, **background: Any) -> dict[str, Any]:
    return {
        "api_keys": [KEY_A, KEY_B],
        "log_level": "info",
        "models": models,
        "background": {"lease_seconds": 3, "heartbeat_seconds": 0.5, "grace_seconds": 0, **background},
    }


@asynccontextmanager
async def _servers(backend: str, directory: Path) -> AsyncIterator[Servers]:
    async with database_for(backend, directory) as url:
        started = Servers(directory, url)
        try:
            yield started
        finally:
            await started.close()


@pytest_asyncio.fixture
async def servers(backend: str, tmp_path: Path) -> AsyncIterator[Servers]:
    """Server processes on SQLite and (a second run) on PostgreSQL."""
    async with _servers(backend, tmp_path) as started:
        yield started


@pytest_asyncio.fixture
async def sqlite_servers(tmp_path: Path) -> AsyncIterator[Servers]:
    """Server processes on SQLite only, for what does not depend on the database's kind."""
    async with _servers("sqlite", tmp_path) as started:
        yield started


async def until(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `probe` until it returns something truthy, failing after the generous deadline."""
    deadline = time.monotonic() + DEADLINE
    while not (value := await probe()):
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE} s"
        await asyncio.sleep(0.1)
    return value


async def ended(client: openai.AsyncOpenAI, ids: list[str]) -> list[Response]:
    """Every response once none is queued or in progress any more."""

    async def probe() -> list[Response] | None:
        responses = [await client.responses.retrieve(response_id) for response_id in ids]
        return None if any(r.status in ("queued", "in_progress") for r in responses) else responses

    result: list[Response] = await until(probe, "every background response ended")
    return result


async def running_on(server: ServerProcess, response_id: str) -> None:
    """Wait until `server` runs the response (its own GET shows the live run in progress)."""

    async def probe() -> bool:
        async with server.client() as client:
            return (await client.responses.retrieve(response_id)).status == "in_progress"

    await until(probe, f"{response_id} running on {server.name}")


async def queue(server: ServerProcess, model: str, count: int) -> list[Response]:
    async with server.client() as client:
        queued = [
            await client.responses.create(model=model, input=f"job {n}", background=True) for n in range(count)
        ]
    assert {response.status for response in queued} == {"queued"}
    return queued


async def test_a_replica_finishes_every_background_response_of_a_killed_process(servers: Servers) -> None:
    first, second = await asyncio.gather(
        servers.start("first", settings(concurrency=4)), servers.start("second", settings(FAST, concurrency=8))
    )
    queued = await queue(first, "slow", 40)
    await running_on(first, queued[0].id)
    await first.kill()
    async with second.client() as client:
        done = await ended(client, [response.id for response in queued])
    assert [response.status for response in done] == ["completed"] * len(queued)
    assert {response.output_text for response in done} == {SLOW_TEXT}
    # Run again from its input: the same response, as the client was told at first.
    assert [(r.id, r.created_at) for r in done] == [(r.id, r.created_at) for r in queued]


async def test_the_restarted_process_finishes_every_background_response(servers: Servers) -> None:
    first = await servers.start("first", settings(concurrency=4))
    queued = await queue(first, "slow", 40)
    await running_on(first, queued[0].id)
    await first.kill()
    restarted = await servers.start("restarted", settings(FAST, concurrency=8))
    async with restarted.client() as client:
        done = await ended(client, [response.id for response in queued])
        assert [response.status for response in done] == ["completed"] * len(queued)
        assert {response.output_text for response in done} == {SLOW_TEXT}
        # The input items keep their ids across the run again.
        items = await client.responses.input_items.list(queued[0].id)
    assert [item.id for item in items.data] and all(item.id for item in items.data)


async def test_a_response_started_too_often_ends_failed_with_a_clear_error(sqlite_servers: Servers) -> None:
    first = await sqlite_servers.start("first", settings(max_attempts=1))
    [queued] = await queue(first, "long", 1)
    await running_on(first, queued.id)
    await first.kill()
    second = await sqlite_servers.start("second", settings(FAST, max_attempts=1))
    async with second.client() as client:
        [failed] = await ended(client, [queued.id])
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "server_error"
    assert failed.error.message == (
        "Every server process that ran this background response stopped before it finished (1 attempt); "
        "it is not run again."
    )


async def test_cancel_works_from_any_process(servers: Servers) -> None:
    first, second = await asyncio.gather(
        servers.start("first", settings()), servers.start("second", settings(FAST))
    )
    running, orphaned = await queue(first, "long", 2)
    await running_on(first, running.id)
    async with second.client() as client:
        # The owner notices the request through the database and stores what it had produced.
        cancelled = await client.responses.cancel(running.id)
        assert cancelled.status == "cancelled" and cancelled.usage is None
        assert cancelled.output_text and LONG_TEXT.startswith(cancelled.output_text)
        async with second.client(KEY_B) as stranger:
            with pytest.raises(openai.NotFoundError):
                await stranger.responses.cancel(orphaned.id)
        # A dead owner's job is cancelled directly (here before or after its lease ran out).
        await running_on(first, orphaned.id)
        await first.kill()
        gone = await client.responses.cancel(orphaned.id)
        assert gone.status == "cancelled"
        assert (await client.responses.retrieve(running.id)).status == "cancelled"
        assert (await client.responses.retrieve(orphaned.id)).status == "cancelled"


async def test_a_job_waiting_for_a_slot_can_be_cancelled(sqlite_servers: Servers) -> None:
    only = await sqlite_servers.start("only", settings(concurrency=1))
    running, waiting = await queue(only, "long", 2)
    await running_on(only, running.id)
    async with only.client() as client:
        assert (await client.responses.retrieve(waiting.id)).status == "queued"
        cancelled = await client.responses.cancel(waiting.id)
        assert cancelled.status == "cancelled" and cancelled.output == []
        # The stream of a response cancelled before it started is still a stream.
        async with client.responses.with_streaming_response.retrieve(waiting.id, stream=True) as raw:
            kinds = [event["type"] for event in parse_sse([line async for line in raw.iter_lines()]).events]
        assert kinds[:2] == ["response.created", "response.queued"]
        assert (await client.responses.cancel(running.id)).status == "cancelled"


async def test_a_stream_from_another_process_follows_the_response_to_its_end(sqlite_servers: Servers) -> None:
    first, second = await asyncio.gather(
        sqlite_servers.start("first", settings()), sqlite_servers.start("second", settings())
    )
    [queued] = await queue(first, "slow", 1)
    await running_on(first, queued.id)

    async def raw(after: int | None) -> list[dict[str, Any]]:
        params: dict[str, str] = {"stream": "true"}
        if after is not None:
            params["starting_after"] = str(after)
        async with (
            httpx.AsyncClient(timeout=DEADLINE) as http,
            http.stream(
                "GET",
                f"{second.base_url}/v1/responses/{queued.id}",
                params=params,
                headers={"Authorization": f"Bearer {KEY_A}"},
            ) as reply,
        ):
            assert reply.status_code == 200
            return parse_sse([line async for line in reply.aiter_lines()]).events

    async def sdk() -> Response:
        async with second.client() as client, client.responses.stream(response_id=queued.id) as stream:
            return await stream.get_final_response()

    whole, tail, final = await asyncio.gather(raw(None), raw(3), sdk())
    assert check_stream(whole)["output"][0]["content"][0]["text"] == SLOW_TEXT
    assert [event["sequence_number"] for event in tail] == [event["sequence_number"] for event in whole[4:]]
    assert final.status == "completed" and final.output_text == SLOW_TEXT


async def test_sigterm_drains_within_the_grace_period_and_hands_the_rest_over(servers: Servers) -> None:
    # A long lease: only a released job can be taken over before the deadline.
    first = await servers.start("first", settings(lease_seconds=600, grace_seconds=6))
    draining = await queue(first, "slow", 2)
    handed = await queue(first, "long", 3)
    for response in [*draining, *handed]:
        await running_on(first, response.id)
    # uvicorn ends by raising the signal again once shutdown is complete.
    assert await first.terminate() in (0, -signal.SIGTERM)
    second = await servers.start("second", settings(FAST, lease_seconds=600))
    async with second.client() as client:
        left = [await client.responses.retrieve(response.id) for response in [*draining, *handed]]
        assert [response.status for response in left[:2]] == ["completed", "completed"]
        assert {response.output_text for response in left[:2]} == {SLOW_TEXT}
        # Never stored as cancelled: left as they were, for another process.
        assert {response.status for response in left[2:]} <= {"queued", "in_progress"}
        done = await ended(client, [response.id for response in handed])
    assert [response.status for response in done] == ["completed"] * 3
    assert {response.output_text for response in done} == {LONG_TEXT}
