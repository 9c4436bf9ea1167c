"""Background responses: queued at once, polled, followed live, resumed, cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from pydantic import ValidationError
from support.events import check_response, check_stream
from support.harness import scripted
from support.sse import parse_sse

from respgate.config import BackgroundSettings

LONG_TEXT = " ".join(f"word{i}" for i in range(40))
MODELS = [
    scripted("quick", {"text": "Done in the background."}),
    scripted("slow", {"text": LONG_TEXT}, delay=0.05),
    scripted("broken", {"error": {"status": 500, "message": "upstream down"}}),
]


async def _settled(client: openai.AsyncOpenAI, response_id: str) -> Any:
    """Poll as a client would until the response leaves queued/in_progress (bounded by a count, not a clock)."""
    for _ in range(500):
        response = await client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        await asyncio.sleep(0.01)
    raise AssertionError(f"{response_id} never settled")


async def test_background_is_queued_then_completes(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    queued = await client.responses.create(model="quick", input="hi", background=True)
    assert queued.status == "queued" and queued.background is True and queued.output == []
    assert queued.usage is None
    done = await _settled(client, queued.id)
    assert done.status == "completed" and done.output_text == "Done in the background."
    check_response((await client.responses.with_raw_response.retrieve(queued.id)).http_response.json())
    # Chaining from a background response works like any other.
    follow = await client.responses.create(model="quick", input="again", previous_response_id=queued.id)
    assert follow.status == "completed"


async def test_background_stream_announces_queued_and_can_be_resumed(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    kinds = [
        event.type
        async for event in await client.responses.create(model="quick", input="hi", background=True, stream=True)
    ]
    events, final = app.last_stream()
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert final["status"] == "completed" and final["background"] is True
    # Replaying from the store yields the same events; starting_after is honoured.
    replay = await app.http.get(
        f"/v1/responses/{final['id']}", params={"stream": "true"}, headers=app.auth_headers()
    )
    assert parse_sse(replay.text.splitlines()).events == events
    tail = await app.http.get(
        f"/v1/responses/{final['id']}",
        params={"stream": "true", "starting_after": "2"},
        headers=app.auth_headers(),
    )
    assert parse_sse(tail.text.splitlines()).events == events[3:]


async def test_a_running_background_response_is_followed_live(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    queued = await client.responses.create(model="slow", input="hi", background=True)
    # The SDK helper resumes through GET ?stream=true and must see the stream from response.created.
    async with client.responses.stream(response_id=queued.id) as stream:
        final = await stream.get_final_response()
    assert final.output_text == LONG_TEXT
    events, wire = app.last_stream()
    assert wire["id"] == queued.id and events[1]["type"] == "response.queued"


async def test_cancel_keeps_what_was_produced(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    queued = await client.responses.create(model="slow", input="hi", background=True)
    for _ in range(500):
        current = await client.responses.retrieve(queued.id)
        if current.status == "in_progress":
            break
        await asyncio.sleep(0.01)
    cancelled = await client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.usage is None
    stored = await client.responses.retrieve(queued.id)
    assert stored.status == "cancelled"
    text = stored.output_text
    assert LONG_TEXT.startswith(text) and text != LONG_TEXT
    assert all(item.status == "incomplete" for item in stored.output)


async def test_background_failure_before_the_first_token_is_stored(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    queued = await client.responses.create(model="broken", input="hi", background=True)
    assert queued.status == "queued"
    failed = await _settled(client, queued.id)
    assert failed.status == "failed" and failed.error is not None
    assert "upstream down" in failed.error.message


async def test_cancel_rules(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    foreground = await client.responses.create(model="quick", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.cancel(foreground.id)
    assert "background=true" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        await client.responses.cancel("resp_doesnotexist")
    # Another key cannot see, and so cannot cancel, someone else's background response.
    queued = await client.responses.create(model="slow", input="hi", background=True)
    with pytest.raises(openai.NotFoundError):
        await app.client("sk-test-bravo-9876543210").responses.cancel(queued.id)
    await client.responses.cancel(queued.id)


async def test_background_stream_events_validate(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    async with client.responses.stream(model="quick", input="hi", background=True) as stream:
        final = await stream.get_final_response()
    assert final.status == "completed"
    events, _ = app.last_stream()
    check_stream(events)


async def test_work_beyond_the_concurrency_cap_waits_queued_and_then_runs(make_app, backend: str) -> None:
    app = await make_app(
        MODELS, backend=backend, background={"concurrency": 1, "heartbeat_seconds": 0.05, "lease_seconds": 5}
    )
    client = app.client()
    running = await client.responses.create(model="slow", input="first", background=True)
    waiting = [await client.responses.create(model="quick", input=f"n{n}", background=True) for n in range(3)]
    assert {(await client.responses.retrieve(r.id)).status for r in waiting} == {"queued"}
    # A stream created while every slot is taken follows the work once a slot frees up.
    async with client.responses.stream(model="quick", input="streamed", background=True) as stream:
        streamed = await stream.get_final_response()
    assert streamed.status == "completed"
    check_stream(app.last_stream()[0])
    for response in [running, *waiting]:
        for _ in range(2_000):
            if (await client.responses.retrieve(response.id)).status == "completed":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{response.id} never completed")


def test_background_settings_are_checked() -> None:
    assert BackgroundSettings().lease_seconds + BackgroundSettings().heartbeat_seconds <= 60
    with pytest.raises(ValidationError, match="at most half"):
        BackgroundSettings(lease_seconds=4, heartbeat_seconds=3)
    with pytest.raises(ValidationError):
        BackgroundSettings(concurrency=0)
