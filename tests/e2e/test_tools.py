"""Function calling: parallel calls, strict normalisation, tool_choice, argument checks (§4, §6.4, §10 row 5)."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
from support.events import check_response
from support.harness import scripted, stream_events
from support.openresponses import check_error_body

pytestmark = pytest.mark.asyncio

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": None,
    "parameters": {
        "type": "object",
        "properties": {"zone": {"type": "string"}},
        "required": ["zone"],
        "additionalProperties": False,
    },
    "strict": True,
}
TWO_CALLS = {
    "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {"zone": "UTC"}},
    ]
}
MODELS = [
    scripted("tools", TWO_CALLS, {"text": "Sunny, and it is noon."}),
    scripted(
        "talk-then-call",
        {"text": "Let me check.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    ),
    scripted("bad-args", {"tool_calls": [{"name": "get_weather", "arguments": {"city": 42}}]}),
    scripted("not-json", {"tool_calls": [{"name": "get_weather", "arguments": "{city: Paris"}]}),
    scripted("ghost-tool", {"tool_calls": [{"name": "launch_rockets", "arguments": {}}]}),
]


def _calls(output: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(item.name, json.loads(item.arguments)) for item in output if item.type == "function_call"]


async def test_two_parallel_calls_json(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.client().responses.create(model="tools", input="weather and time?", tools=[WEATHER, TIME])
    check_response(json.loads(app.recorder.exchanges[-1].body))
    assert _calls(response.output) == [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "UTC"})]
    assert all(item.id.startswith("fc_") and item.call_id.startswith("call_") for item in response.output)
    assert len({item.call_id for item in response.output}) == 2
    assert response.output_text == ""


async def test_two_parallel_calls_stream_are_serialised(make_app) -> None:
    app = await make_app(MODELS)
    events, final = await stream_events(
        app.client(), model="tools", input="weather and time?", tools=[WEATHER, TIME]
    )
    kinds = [event["type"] for event in events]
    first_done = kinds.index("response.output_item.done")
    second_added = [i for i, kind in enumerate(kinds) if kind == "response.output_item.added"][1]
    assert first_done < second_added
    done = [event for event in events if event["type"] == "response.function_call_arguments.done"]
    assert [event["name"] for event in done] == ["get_weather", "get_time"]
    assert [item["name"] for item in final["output"]] == ["get_weather", "get_time"]


async def test_strict_tools_get_parsed_arguments(make_app) -> None:
    app = await make_app(MODELS)
    parsed = await app.client().responses.parse(model="tools", input="weather and time?", tools=[WEATHER, TIME])
    assert [call.parsed_arguments for call in parsed.output] == [{"city": "Paris"}, {"zone": "UTC"}]
    async with app.client().responses.stream(model="tools", input="again", tools=[WEATHER, TIME]) as stream:
        final = await stream.get_final_response()
    app.last_stream()
    assert [call.parsed_arguments for call in final.output] == [{"city": "Paris"}, {"zone": "UTC"}]


async def test_a_call_may_follow_a_message(make_app) -> None:
    app = await make_app(MODELS)
    _, final = await stream_events(app.client(), model="talk-then-call", input="weather?", tools=[WEATHER])
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]


async def test_parallel_tool_calls_false_gives_one_call(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    response = await client.responses.create(
        model="tools", input="weather and time?", tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert response.parallel_tool_calls is False
    assert _calls(response.output) == [("get_weather", {"city": "Paris"})]
    _, final = await stream_events(
        client, model="tools", input="weather and time?", tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert len(final["output"]) == 1


async def test_max_tool_calls_limits_calls(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.client().responses.create(
        model="tools", input="weather and time?", tools=[WEATHER, TIME], max_tool_calls=1
    )
    assert response.max_tool_calls == 1
    assert len(_calls(response.output)) == 1


async def test_tool_choice_none_calls_nothing(make_app) -> None:
    app = await make_app([scripted("m", {"text": "No tools today.", **TWO_CALLS})])
    response = await app.client().responses.create(
        model="m", input="weather?", tools=[WEATHER, TIME], tool_choice="none"
    )
    assert response.tool_choice == "none"
    assert _calls(response.output) == [] and response.output_text == "No tools today."


async def test_named_tool_choice_is_echoed(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.client().responses.create(
        model="talk-then-call",
        input="weather?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    assert response.tool_choice.type == "function" and response.tool_choice.name == "get_weather"


@pytest.mark.parametrize(
    ("parameters", "strict", "echoed"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, None, True),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a"],
            },
            None,
            False,
        ),
        ({"type": "object", "properties": {}}, None, True),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, False, False),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            True,
            True,
        ),
    ],
)
async def test_strict_normalisation_echo(
    make_app, parameters: dict[str, Any], strict: bool | None, echoed: bool
) -> None:
    app = await make_app([scripted("m", {"text": "ok"})])
    tool: dict[str, Any] = {"type": "function", "name": "f", "parameters": parameters}
    if strict is not None:
        tool["strict"] = strict
    response = await app.client().responses.create(model="m", input="hi", tools=[tool])
    body = json.loads(app.recorder.exchanges[-1].body)
    assert body["tools"][0]["strict"] is echoed
    assert body["tools"][0]["parameters"] == parameters  # echoed as sent
    assert set(body["tools"][0]) == {"type", "name", "description", "parameters", "strict"}
    assert response.tools[0].strict is echoed


async def test_strict_true_without_additional_properties_is_rejected(make_app) -> None:
    app = await make_app([scripted("m", {"text": "ok"})])
    tool = {
        "type": "function",
        "name": "f",
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        "strict": True,
    }
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="m", input="hi", tools=[tool])
    assert caught.value.body["message"] == (
        "Invalid schema for function 'f': In context=(), 'additionalProperties' is required to be supplied and to be false."
    )
    assert caught.value.param == "tools[0].parameters"
    check_error_body({"error": caught.value.body})


async def test_arguments_failing_the_schema_never_reach_the_client(
    make_app, caplog: pytest.LogCaptureFixture
) -> None:
    app = await make_app(MODELS)
    client = app.client()
    with caplog.at_level(logging.WARNING, logger="respgate.engine.service"):
        response = await client.responses.create(model="bad-args", input="weather?", tools=[WEATHER])
    body = json.loads(app.recorder.exchanges[-1].body)
    check_response(body)
    assert response.status == "failed" and response.error is not None
    assert response.error.code == "server_error" and "do not match its schema" in response.error.message
    assert response.output == []
    assert sum("regenerating" in record.getMessage() for record in caplog.records) == 1
    stored = await client.responses.retrieve(response.id)
    assert stored.status == "failed"

    events, final = await stream_events(client, model="bad-args", input="weather?", tools=[WEATHER])
    assert events[-1]["type"] == "response.failed" and final["output"] == []
    assert not any("42" in event.get("delta", "") for event in events)
    assert (await client.responses.retrieve(final["id"])).status == "failed"


async def test_arguments_that_are_not_json_fail(make_app) -> None:
    app = await make_app(MODELS)
    _, final = await stream_events(app.client(), model="not-json", input="weather?", tools=[WEATHER])
    assert final["status"] == "failed" and "not valid JSON" in final["error"]["message"]


async def test_a_call_to_an_unknown_tool_fails(make_app) -> None:
    app = await make_app(MODELS)
    _, final = await stream_events(app.client(), model="ghost-tool", input="go", tools=[WEATHER])
    assert final["status"] == "failed" and "launch_rockets" in final["error"]["message"]
    assert final["output"] == []


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search"},
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "linux"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://example.invalid/mcp"},
    ],
)
async def test_tool_types_the_server_does_not_run_are_rejected(make_app, tool: dict[str, Any]) -> None:
    app = await make_app([scripted("m", {"text": "ok"})])
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="m", input="hi", tools=[WEATHER, tool])
    assert caught.value.param == "tools[1].type"
    assert tool["type"] in caught.value.body["message"]


@pytest.mark.parametrize(
    ("choice", "param", "named"),
    [
        ({"type": "function", "name": "absent"}, "tool_choice.name", "absent"),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "absent"}]},
            "tool_choice.tools[0]",
            "absent",
        ),
        ({"type": "web_search_preview"}, "tool_choice.type", "web_search_preview"),
    ],
)
async def test_tool_choice_naming_an_absent_tool_is_rejected(
    make_app, choice: dict[str, Any], param: str, named: str
) -> None:
    app = await make_app([scripted("m", {"text": "ok"})])
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="m", input="hi", tools=[WEATHER], tool_choice=choice)
    assert caught.value.param == param
    assert named in caught.value.body["message"]


async def test_tool_choice_required_without_tools_is_rejected(make_app) -> None:
    app = await make_app([scripted("m", {"text": "ok"})])
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="m", input="hi", tool_choice="required")
    assert caught.value.param == "tool_choice"
