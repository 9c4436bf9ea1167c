"""`GET /v1/responses/{id}?stream=true` of a response that kept no events: synthesised from the stored
response, on SQLite and PostgreSQL. Only background responses keep their events, replayed as streamed."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from support.events import check_stream
from support.harness import KEY_A, KEY_B, scripted, stream_events
from support.sse import parse_sse_text

from respgate.http.auth import KeyChecker

pytestmark = pytest.mark.asyncio

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
LONG_TEXT = " ".join(f"word{i}" for i in range(40))
MODELS = [
    scripted("text", {"text": "Plain answer."}),
    scripted("refusal", {"refusal": "I cannot help with that."}),
    scripted("reasoning", {"reasoning": "Think first.", "text": "Then answer."}),
    scripted(
        "calls",
        {
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Rome"}},
            ]
        },
    ),
    scripted("long", {"text": LONG_TEXT}),
    scripted("cut", {"text": LONG_TEXT, "fail_after": 3}),
]
CASES: list[tuple[str, dict[str, Any]]] = [
    ("text", {}),
    ("refusal", {}),
    ("reasoning", {}),
    ("calls", {"tools": [WEATHER]}),
    ("long", {"max_output_tokens": 16}),
    ("cut", {}),
]
OWNER_A = KeyChecker([KEY_A]).owner(f"Bearer {KEY_A}")


async def replay(app: Any, response_id: str, **params: str) -> list[dict[str, Any]]:
    answer = await app.http.get(
        f"/v1/responses/{response_id}", params={"stream": "true", **params}, headers=app.auth_headers()
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events: list[dict[str, Any]] = parse_sse_text(answer.text).events
    return events


@pytest.mark.parametrize(("model", "params"), CASES, ids=[model for model, _ in CASES])
async def test_a_stored_response_replays_as_a_valid_stream(
    make_app, backend: str, model: str, params: dict[str, Any]
) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    streamed, final = await stream_events(client, model=model, input="hi", **params)
    assert await app.gateway.store.events(final["id"], OWNER_A) is None  # no events stored
    events = await replay(app, final["id"])
    assert check_stream(events) == final
    items = [event["item"] for event in streamed if event["type"] == "response.output_item.done"]
    assert [event["item"] for event in events if event["type"] == "response.output_item.done"] == items
    deltas = [event for event in events if event["type"].endswith(".delta")]
    parts = [event for event in events if event["type"].endswith("part.added")]
    calls = [item for item in items if item["type"] == "function_call"]
    assert len(deltas) == len(parts) + len(calls)  # one delta per part, one per call's arguments
    assert all(event["obfuscation"] for event in deltas)

    # The SDK's helper follows the replay like a live stream.
    async with client.responses.stream(response_id=final["id"]) as stream:
        seen = [event.type async for event in stream]
        if final["status"] == "completed":
            assert (await stream.get_final_response()).id == final["id"]
    assert seen[0] == "response.created" and seen[-1] == events[-1]["type"]
    check_stream(app.last_stream()[0])


async def test_a_json_answer_replays_the_same_as_a_streamed_one(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    created = await client.responses.create(model="calls", input="weather?", tools=[WEATHER])
    events = await replay(app, created.id, include_obfuscation="false")
    assert (
        check_stream(events)
        == (await client.responses.with_raw_response.retrieve(created.id)).http_response.json()
    )
    assert not any("obfuscation" in event for event in events)
    assert [event["sequence_number"] for event in events[4:]] == list(range(4, len(events)))
    assert [event["sequence_number"] for event in await replay(app, created.id, starting_after="3")] == list(
        range(4, len(events))
    )


async def test_another_key_cannot_replay(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    created = await app.client().responses.create(model="text", input="hi")
    with pytest.raises(openai.NotFoundError):
        await app.client(KEY_B).responses.retrieve(created.id, stream=True)


async def test_background_responses_keep_their_events(make_app, backend: str) -> None:
    """Followers resume a background response by sequence number: its replay is what was streamed."""
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    streamed, final = await stream_events(client, model="text", input="hi", background=True)
    for _ in range(500):
        if (await client.responses.retrieve(final["id"])).status == "completed":
            break
        await asyncio.sleep(0.01)
    assert await replay(app, final["id"]) == streamed
    assert await app.gateway.store.events(final["id"], OWNER_A) == streamed
