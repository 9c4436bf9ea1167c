"""Strict promises on every backend: arguments or JSON text that fail the schema are regenerated once, then fail."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeCall, Reply
from support.events import check_response
from support.harness import stream_events

from gateway.upstreams import Single, Upstreams, entry
from gateway.wire import CITY_FORMAT, WEATHER_TOOL, create_json, function_calls, output_text, stream_json_schema

pytestmark = pytest.mark.asyncio

GOOD = '{"city": "Paris", "days": 3}'
BAD = '{"city": "Paris", "days": "three"}'
PARAMS: dict[str, Any] = {"model": "gpt-4.1", "input": "Weather in Paris for three days?", "tools": [WEATHER_TOOL]}


def _weather(arguments: str) -> Reply:
    return Reply(calls=(FakeCall(name="get_weather", arguments=arguments),), chunks=3)


async def _stored(single: Single, response_id: str) -> dict[str, Any]:
    raw = await single.client.responses.with_raw_response.retrieve(response_id)
    body: dict[str, Any] = raw.http_response.json()
    check_response(body)
    return body


async def test_bad_arguments_are_regenerated_once(single: Single) -> None:
    single.fake.enqueue(_weather(BAD), _weather(GOOD))
    events, final = await stream_events(single.client, **PARAMS)
    assert final["status"] == "completed"
    [call] = function_calls(final)
    assert json.loads(call["arguments"]) == {"city": "Paris", "days": 3}
    # Nothing of the rejected attempt reached the client.
    assert not any(BAD in json.dumps(event) for event in events)
    assert len(single.fake.requests) == 2
    assert single.fake.requests[0].body == single.fake.requests[1].body


async def test_arguments_bad_twice_fail_the_response(single: Single) -> None:
    single.fake.enqueue(_weather(BAD), _weather('{"city": "Paris"}'), _weather(GOOD))
    events, final = await stream_events(single.client, **PARAMS)
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed"
    # Our own codes are outside the SDK's enum for `error.code`: the message carries the detail.
    assert final["error"]["code"] == "server_error"
    assert "arguments for 'get_weather' that do not match its schema" in final["error"]["message"]
    assert final["output"] == [] and not any(BAD in json.dumps(event) for event in events)
    # Regenerated once, not more.
    assert len(single.fake.requests) == 2
    stored = await _stored(single, final["id"])
    assert stored["status"] == "failed" and stored["error"] == final["error"]


async def test_arguments_bad_twice_fail_a_non_streamed_response(single: Single) -> None:
    single.fake.enqueue(_weather(BAD), _weather(BAD))
    body = await create_json(single.client, **PARAMS)
    assert body["status"] == "failed" and "'get_weather'" in body["error"]["message"]
    assert function_calls(body) == [] and len(single.fake.requests) == 2
    assert (await _stored(single, body["id"]))["status"] == "failed"


async def test_a_call_to_an_unknown_tool_is_regenerated(single: Single) -> None:
    single.fake.enqueue(Reply(calls=(FakeCall(name="get_forecast", arguments=GOOD),)), _weather(GOOD))
    _, final = await stream_events(single.client, **PARAMS)
    assert [call["name"] for call in function_calls(final)] == ["get_weather"]
    assert len(single.fake.requests) == 2


JSON_KINDS = ["chat_completions", "openai_responses"]
INCOMPLETE_CITY = '{"name": "Paris"}'
CITY = '{"name": "Paris", "population": 2100000}'


@pytest.mark.parametrize("kind", JSON_KINDS)
async def test_streamed_json_text_that_breaks_the_schema_fails_the_response(
    kind: str, upstreams: Upstreams, make_app: Any
) -> None:
    """Streamed text has left the server by the time it can be checked: it cannot be retracted, so the
    terminal event fails the response instead of completing it."""
    fake = await upstreams.start(kind)
    app = await make_app([entry(kind, fake)])
    fake.enqueue(Reply(text=INCOMPLETE_CITY, chunks=2), Reply(text=CITY))
    client = app.client()
    events, final = await stream_json_schema(
        client, model="gpt-4.1", input="A city.", text={"format": CITY_FORMAT}
    )
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed"
    assert "does not match the schema 'city'" in final["error"]["message"]
    stored = (await client.responses.with_raw_response.retrieve(final["id"])).http_response.json()
    assert stored["status"] == "failed"


@pytest.mark.parametrize("kind", JSON_KINDS)
async def test_json_text_that_breaks_the_schema_is_regenerated_when_not_streamed(
    kind: str, upstreams: Upstreams, make_app: Any
) -> None:
    fake = await upstreams.start(kind)
    app = await make_app([entry(kind, fake)])
    fake.enqueue(Reply(text=INCOMPLETE_CITY, chunks=2), Reply(text=CITY))
    body = await create_json(app.client(), model="gpt-4.1", input="A city.", text={"format": CITY_FORMAT})
    assert body["status"] == "completed" and json.loads(output_text(body))["population"] == 2100000
    assert len(fake.requests) == 2
