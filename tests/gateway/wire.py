"""What the gateway tests share: the seed request, request helpers, and each upstream's wire format read back.

`history(kind, body)` turns the context an upstream received (chat `messages`, Responses `input`,
Anthropic `messages`) into one neutral list of turns, checking the shapes that wire format requires,
so a test can say "this upstream saw the whole conversation" the same way for every provider.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import openai
from fakes import FakeCall
from support.events import check_response, check_sdk_types, check_stream
from support.harness import raw_stream

DATA = Path(__file__).resolve().parent.parent / "data"
SEED: dict[str, Any] = json.loads((DATA / "seed_request.json").read_text(encoding="utf-8"))
SEED_PROMPT: str = SEED["input"][0]["content"]
SEED_TOOL_NAMES = [tool["name"] for tool in SEED["tools"]]

# The four calls the seed asks for, in the order its prompt lists them.
SEED_CALLS = (
    FakeCall(name="current_time", arguments="{}"),
    FakeCall(name="system_info", arguments="{}"),
    FakeCall(name="math_calculator", arguments='{"operation": "add", "a": 123.5, "b": 456.7}'),
    FakeCall(name="random_generator", arguments='{"min": 1, "max": 100, "count": 3}'),
)
SEED_OUTPUTS = {
    "current_time": "2026-11-25 17:00:00",
    "system_info": '{"os": "Linux", "memory": "16 GiB"}',
    "math_calculator": "580.2",
    "random_generator": "[7, 42, 93]",
}

# A strict tool: every property required, no extra keys.
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
CITY_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "name": "city",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
        "additionalProperties": False,
    },
}


def seed(**overrides: Any) -> dict[str, Any]:
    """The seed request's parameters, for `client.responses.create(**seed())`."""
    return {**SEED, **overrides}


async def create_json(client: openai.AsyncOpenAI, **params: Any) -> dict[str, Any]:
    """A non-streamed create through the SDK; the raw JSON body, checked as a Response."""
    raw = await client.responses.with_raw_response.create(**params)
    body: dict[str, Any] = raw.http_response.json()
    check_response(body)
    return body


async def stream_json_schema(
    client: openai.AsyncOpenAI, **params: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Like `stream_events`, for a request whose `text.format` is `json_schema`.

    The Open Responses document allows only `null` as the echoed format's `schema` (and requires
    `description`), while OpenAI and the SDK's type echo the caller's schema object: no echo can
    satisfy both. So every event is checked against the SDK's types as sent, and the whole stream
    goes through the validator with that one echoed object shown as `json_object`; the caller
    asserts the real echo itself.
    """
    events = (await raw_stream(client, **params)).events
    for event in events:
        check_sdk_types(event)
    check_stream([_format_shown_as_json_object(event) for event in events])
    final: dict[str, Any] = events[-1]["response"]
    return events, final


def _format_shown_as_json_object(event: dict[str, Any]) -> dict[str, Any]:
    response = event.get("response")
    if not isinstance(response, dict) or response["text"]["format"]["type"] != "json_schema":
        return event
    text = {**response["text"], "format": {"type": "json_object"}}
    return {**event, "response": {**response, "text": text}}


def function_calls(response: dict[str, Any]) -> list[dict[str, Any]]:
    calls = [item for item in response["output"] if item["type"] == "function_call"]
    for call in calls:
        assert call["id"].startswith("fc_") and call["call_id"].startswith("call_"), call
        assert call["status"] == "completed"
    return calls


def output_text(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def outputs_for(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`function_call_output` items answering each call with the seed's canned result."""
    return [
        {"type": "function_call_output", "call_id": call["call_id"], "output": SEED_OUTPUTS[call["name"]]}
        for call in calls
    ]


# Neutral turns: ("user", text) | ("assistant", text) | ("call", call_id, name, arguments)
# | ("output", call_id, text) | ("reasoning", opaque blob).
Turn = tuple[Any, ...]


def turns_of(calls: list[dict[str, Any]]) -> list[Turn]:
    return [("call", call["call_id"], call["name"], json.loads(call["arguments"])) for call in calls]


def answered(calls: list[dict[str, Any]]) -> list[Turn]:
    return [("output", call["call_id"], SEED_OUTPUTS[call["name"]]) for call in calls]


def history(kind: str, body: dict[str, Any]) -> list[Turn]:
    """The conversation an upstream received, read from its own wire format."""
    if kind == "chat_completions":
        return _chat_history(body)
    if kind == "openai_responses":
        return _responses_history(body)
    if kind == "anthropic":
        return _anthropic_history(body)
    raise AssertionError(kind)


def _chat_history(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    for message in body["messages"]:
        role = message["role"]
        if role == "user":
            assert isinstance(message["content"], str), message
            turns.append(("user", message["content"]))
        elif role == "assistant":
            if message.get("content"):
                turns.append(("assistant", message["content"]))
            for call in message.get("tool_calls") or []:
                assert call["type"] == "function" and set(call) == {"id", "type", "function"}, call
                function = call["function"]
                turns.append(("call", call["id"], function["name"], json.loads(function["arguments"])))
        elif role == "tool":
            assert set(message) == {"role", "tool_call_id", "content"}, message
            turns.append(("output", message["tool_call_id"], message["content"]))
        else:
            raise AssertionError(f"unexpected chat message {message}")
    # Every tool message answers a call made by an earlier assistant message.
    made: set[str] = set()
    for turn in turns:
        if turn[0] == "call":
            made.add(turn[1])
        elif turn[0] == "output":
            assert turn[1] in made, turn
    return turns


def _responses_history(body: dict[str, Any]) -> list[Turn]:
    # The gateway keeps the state: the upstream gets the whole context and stores nothing.
    assert body["store"] is False and "previous_response_id" not in body, body
    turns: list[Turn] = []
    for item in body["input"]:
        assert "id" not in item, f"an item id reached a store=false upstream: {item}"
        kind = item["type"]
        if kind == "message":
            for part in item["content"]:
                expected = "output_text" if item["role"] == "assistant" else "input_text"
                assert part["type"] == expected, item
                turns.append((item["role"], part["text"]))
        elif kind == "function_call":
            turns.append(("call", item["call_id"], item["name"], json.loads(item["arguments"])))
        elif kind == "function_call_output":
            turns.append(("output", item["call_id"], item["output"]))
        elif kind == "reasoning":
            # Only a blob this upstream minted can be replayed; without one the item has no use.
            assert item["encrypted_content"], item
            turns.append(("reasoning", item["encrypted_content"]))
        else:
            raise AssertionError(f"unexpected input item {item}")
    return turns


def _anthropic_history(body: dict[str, Any]) -> list[Turn]:
    messages = body["messages"]
    roles = [message["role"] for message in messages]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles)), roles
    turns: list[Turn] = []
    for message in messages:
        role = message["role"]
        for block in message["content"]:
            if block["type"] == "text":
                turns.append((role, block["text"]))
            elif block["type"] == "tool_use":
                assert role == "assistant", message
                turns.append(("call", block["id"], block["name"], block["input"]))
            elif block["type"] == "tool_result":
                assert role == "user", message
                turns.append(("output", block["tool_use_id"], block["content"]))
            elif block["type"] == "thinking":
                assert role == "assistant" and block["signature"], message
                turns.append(("reasoning", block["signature"]))
            else:
                raise AssertionError(f"unexpected block {block}")
    return turns


def tool_names(kind: str, body: dict[str, Any]) -> list[str]:
    """The tool names an upstream was offered, read from its own tool format."""
    if kind == "chat_completions":
        assert all(tool["type"] == "function" for tool in body["tools"])
        return [tool["function"]["name"] for tool in body["tools"]]
    if kind == "openai_responses":
        assert all(tool["type"] == "function" for tool in body["tools"])
        return [tool["name"] for tool in body["tools"]]
    assert all("input_schema" in tool for tool in body["tools"])
    return [tool["name"] for tool in body["tools"]]
