"""Each remote provider end to end: the official SDK → the gateway → a fake upstream speaking its wire format."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
from fakes import Failure, FakeCall, Reply
from fakes.script import split
from support.events import check_response
from support.harness import stream_events

from gateway.upstreams import Single, Upstreams, entry
from gateway.wire import (
    CITY_FORMAT,
    SEED_CALLS,
    SEED_PROMPT,
    SEED_TOOL_NAMES,
    WEATHER_TOOL,
    answered,
    create_json,
    function_calls,
    history,
    output_text,
    outputs_for,
    seed,
    stream_json_schema,
    tool_names,
    turns_of,
)

pytestmark = pytest.mark.asyncio

ANSWER = "Hello from the upstream, in several pieces."
SEED_ARGUMENTS = [(call.name, json.loads(call.arguments)) for call in SEED_CALLS]
# Where each fake's event stream is cut so that exactly two text pieces got through first.
CUT_AFTER_TWO_PIECES = {"chat_completions": 3, "openai_responses": 6, "anthropic": 5}
# The field each wire format uses for the output token limit.
LIMIT_FIELD = {"chat_completions": "max_completion_tokens", "openai_responses": "max_output_tokens"}


async def test_text(single: Single) -> None:
    single.fake.enqueue(Reply(text=ANSWER, chunks=3, input_tokens=21, output_tokens=9))
    body = await create_json(single.client, model="gpt-4.1", input="Say hello.")
    assert body["status"] == "completed" and body["model"] == "gpt-4.1"
    assert output_text(body) == ANSWER
    assert body["usage"]["input_tokens"] == 21 and body["usage"]["output_tokens"] == 9
    sent = single.fake.last_body
    assert sent["model"] == f"{single.kind}-upstream" and sent["stream"] is True
    assert history(single.kind, sent) == [("user", "Say hello.")]


async def test_streamed_text(single: Single) -> None:
    single.fake.enqueue(Reply(text=ANSWER, chunks=5))
    events, final = await stream_events(single.client, model="gpt-4.1", input="Say hello.")
    deltas = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    assert deltas == split(ANSWER, 5)
    assert final["status"] == "completed" and output_text(final) == ANSWER
    if single.kind == "chat_completions":
        # Usage arrives in the usage-only final chunk, which the gateway asked for.
        assert single.fake.last_body["stream_options"] == {"include_usage": True}
    assert final["usage"]["input_tokens"] == 12 and final["usage"]["output_tokens"] == 7


def _check_seed_calls(kind: str, response: dict[str, Any], sent: dict[str, Any]) -> None:
    calls = function_calls(response)
    assert [(call["name"], json.loads(call["arguments"])) for call in calls] == SEED_ARGUMENTS
    assert len({call["call_id"] for call in calls}) == 4 and len({call["id"] for call in calls}) == 4
    assert output_text(response) == ""
    assert tool_names(kind, sent) == SEED_TOOL_NAMES
    if kind == "anthropic":
        assert sent["tool_choice"] == {"type": "auto"}
    else:
        assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is True


async def test_seed_parallel_calls_json(single: Single) -> None:
    single.fake.enqueue(Reply(calls=SEED_CALLS, chunks=3, interleave=True))
    body = await create_json(single.client, **seed())
    assert body["status"] == "completed"
    _check_seed_calls(single.kind, body, single.fake.last_body)


async def test_seed_parallel_calls_streamed(single: Single) -> None:
    # The chat and Responses fakes interleave the four calls' argument chunks; the gateway serialises them.
    single.fake.enqueue(Reply(calls=SEED_CALLS, chunks=3, interleave=True))
    events, final = await stream_events(single.client, **seed())
    _check_seed_calls(single.kind, final, single.fake.last_body)
    added = [event["item"]["name"] for event in events if event["type"] == "response.output_item.added"]
    assert added == [name for name, _ in SEED_ARGUMENTS]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_round_trip_through_previous_response_id(single: Single, stream: bool) -> None:
    single.fake.enqueue(
        Reply(calls=SEED_CALLS, chunks=2, interleave=True),
        Reply(text="Done: 580.2.", chunks=2),
        Reply(text="You're welcome."),
    )

    async def create(**params: Any) -> dict[str, Any]:
        if stream:
            return (await stream_events(single.client, **params))[1]
        return await create_json(single.client, **params)

    first = await create(**seed())
    calls = function_calls(first)
    second = await create(
        model="gpt-4.1", previous_response_id=first["id"], input=outputs_for(calls), tools=seed()["tools"]
    )
    assert output_text(second) == "Done: 580.2." and second["previous_response_id"] == first["id"]
    expected = [("user", SEED_PROMPT), *turns_of(calls), *answered(calls)]
    assert history(single.kind, single.fake.requests[1].body) == expected

    third = await create(model="gpt-4.1", previous_response_id=second["id"], input="Thanks!")
    assert output_text(third) == "You're welcome."
    expected += [("assistant", "Done: 580.2."), ("user", "Thanks!")]
    assert history(single.kind, single.fake.requests[2].body) == expected


async def test_strict_tool(single: Single) -> None:
    arguments = '{"city": "Paris", "days": 3}'
    single.fake.enqueue(Reply(calls=(FakeCall(name="get_weather", arguments=arguments),), chunks=3))
    _, final = await stream_events(single.client, model="gpt-4.1", input="Weather?", tools=[WEATHER_TOOL])
    [call] = function_calls(final)
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris", "days": 3}
    assert final["tools"][0]["strict"] is True
    [tool] = single.fake.last_body["tools"]
    if single.kind == "chat_completions":
        assert tool["function"]["strict"] is True
        assert tool["function"]["parameters"] == WEATHER_TOOL["parameters"]
    elif single.kind == "openai_responses":
        assert tool["strict"] is True and tool["parameters"] == WEATHER_TOOL["parameters"]
    else:
        # Not every Claude model enforces schemas: unless the deployment says so, the gateway checks them.
        assert "strict" not in tool and tool["input_schema"] == WEATHER_TOOL["parameters"]


async def test_anthropic_strict_tool_when_the_deployment_supports_it(upstreams: Upstreams, make_app: Any) -> None:
    fake = await upstreams.start("anthropic")
    app = await make_app([entry("anthropic", fake, capabilities={"strict": True})])
    fake.enqueue(Reply(calls=(FakeCall(name="get_weather", arguments='{"city": "Oslo", "days": 1}'),)))
    await stream_events(app.client(), model="gpt-4.1", input="Weather?", tools=[WEATHER_TOOL])
    assert fake.last_body["tools"][0]["strict"] is True


async def test_json_schema_output(single: Single) -> None:
    document = '{"name": "Paris", "population": 2100000}'
    single.fake.enqueue(Reply(text=document, chunks=4))
    params: dict[str, Any] = {"model": "gpt-4.1", "input": "A city, as JSON.", "text": {"format": CITY_FORMAT}}
    if single.kind == "anthropic":
        # Structured output is opt-in per Anthropic deployment: without it, a 400 names the feature.
        with pytest.raises(openai.BadRequestError) as caught:
            await single.client.responses.create(**params)
        assert caught.value.status_code == 400
        assert "structured output (text.format json_schema)" in caught.value.message
        assert caught.value.code == "unsupported_feature"
        assert single.fake.requests == []
        return
    _, final = await stream_json_schema(single.client, **params)
    assert json.loads(output_text(final)) == {"name": "Paris", "population": 2100000}
    echoed = final["text"]["format"]
    assert (echoed["type"], echoed["name"], echoed["schema"], echoed["strict"]) == (
        "json_schema",
        "city",
        CITY_FORMAT["schema"],
        True,
    )
    sent = single.fake.last_body
    if single.kind == "chat_completions":
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY_FORMAT["schema"], "strict": True},
        }
    else:
        assert sent["text"]["format"]["type"] == "json_schema"
        assert sent["text"]["format"]["schema"] == CITY_FORMAT["schema"]
        assert sent["text"]["format"]["strict"] is True


async def test_anthropic_json_schema_when_the_deployment_supports_it(upstreams: Upstreams, make_app: Any) -> None:
    fake = await upstreams.start("anthropic")
    app = await make_app([entry("anthropic", fake, capabilities={"json_schema": True})])
    fake.enqueue(Reply(text='{"name": "Oslo", "population": 700000}', chunks=3))
    _, final = await stream_json_schema(
        app.client(), model="gpt-4.1", input="A city.", text={"format": CITY_FORMAT}
    )
    assert json.loads(output_text(final)) == {"name": "Oslo", "population": 700000}
    assert fake.last_body["output_config"] == {"format": {"type": "json_schema", "schema": CITY_FORMAT["schema"]}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_max_output_tokens(single: Single, stream: bool) -> None:
    single.fake.enqueue(Reply(text="The answer is cut", chunks=3, finish="length"))
    params: dict[str, Any] = {"model": "gpt-4.1", "input": "Write a long essay.", "max_output_tokens": 32}
    if stream:
        events, final = await stream_events(single.client, **params)
        assert events[-1]["type"] == "response.incomplete"
    else:
        final = await create_json(single.client, **params)
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete" and output_text(final) == "The answer is cut"
    assert single.fake.last_body[LIMIT_FIELD.get(single.kind, "max_tokens")] == 32


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_upstream_500_fails_over_to_the_second_deployment(
    kind: str, upstreams: Upstreams, make_app: Any, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = await upstreams.start(kind), await upstreams.start(kind)
    app = await make_app([entry(kind, first), entry(kind, second)])
    first.enqueue(Failure(status=500, message="The server had an error."))
    second.enqueue(Reply(text=ANSWER, chunks=3))
    caplog.set_level(logging.INFO, logger="respgate")
    if stream:
        _, final = await stream_events(app.client(), model="gpt-4.1", input="hi")
    else:
        final = await create_json(app.client(), model="gpt-4.1", input="hi")
    assert final["status"] == "completed" and output_text(final) == ANSWER and final["model"] == "gpt-4.1"
    assert len(first.requests) == 1 and len(second.requests) == 1
    assert history(kind, second.last_body) == [("user", "hi")]
    # The log names the deployment that answered.
    assert any(f"served by gpt-4.1#1:{kind}" in record.getMessage() for record in caplog.records)


async def test_upstream_disconnect_mid_stream_fails_the_response(
    kind: str, upstreams: Upstreams, make_app: Any
) -> None:
    broken, spare = await upstreams.start(kind), await upstreams.start(kind)
    app = await make_app([entry(kind, broken), entry(kind, spare)])
    broken.enqueue(Reply(text=ANSWER, chunks=5, disconnect_after=CUT_AFTER_TWO_PIECES[kind]))
    client = app.client()
    events, final = await stream_events(client, model="gpt-4.1", input="hi")
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed"
    assert final["error"]["code"] and "broke off" in final["error"]["message"]
    deltas = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    assert deltas == split(ANSWER, 5)[:2]
    # After the first token there is no failover: the second deployment was never asked.
    assert spare.requests == []
    stored = (await client.responses.with_raw_response.retrieve(final["id"])).http_response.json()
    check_response(stored)
    assert stored["status"] == "failed" and stored["error"] == final["error"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_upstream_400_is_a_client_400(kind: str, upstreams: Upstreams, make_app: Any, stream: bool) -> None:
    rejecting, spare = await upstreams.start(kind), await upstreams.start(kind)
    app = await make_app([entry(kind, rejecting), entry(kind, spare)])
    upstream_message = "Invalid 'messages[0].content': string too long. Expected at most 10485760 characters."
    rejecting.enqueue(Failure(status=400, message=upstream_message))
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi", stream=stream)
    error = caught.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert isinstance(error.body, dict) and upstream_message in error.body["message"]
    # The client's own fault is not retried on another deployment.
    assert len(rejecting.requests) == 1 and spare.requests == []
