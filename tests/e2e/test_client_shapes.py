"""Request shapes real clients send that go beyond plain function tools (Codex CLI's, here)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from support.events import check_response
from support.harness import scripted, stream_events

from respgate.engine.context import for_model

NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for spawning and managing sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "spawn_agent",
            "description": "Start a sub-agent.",
            "strict": False,
            "parameters": {
                "type": "object",
                "properties": {"task": {"type": "string"}},
                "required": ["task"],
                "additionalProperties": False,
            },
        }
    ],
}
EXEC = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command.",
    "strict": False,
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


def codex_request(**overrides: Any) -> dict[str, Any]:
    """The shape of Codex CLI's requests: developer messages, namespace and hosted tools, client metadata."""
    request: dict[str, Any] = {
        "model": "agent",
        "instructions": "You are a coding agent.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Sandbox: read-only."}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Start a helper."}]},
        ],
        "tools": [EXEC, NAMESPACE, WEB_SEARCH],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1",
        "extra_body": {"client_metadata": {"turn_id": "t1"}},
    }
    request.update(overrides)
    return request


MODELS = [
    scripted(
        "agent",
        {"tool_calls": [{"name": "multi_agent_v1__spawn_agent", "arguments": {"task": "lint"}}]},
        {"text": "The helper is running."},
    )
]


async def test_hosted_tools_are_refused_by_default_naming_the_tool(make_app) -> None:
    app = await make_app(MODELS)
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(**codex_request())
    assert caught.value.param == "tools[2].type" and caught.value.code == "unsupported_tool"
    assert "web_search" in caught.value.message


async def test_with_omit_hosted_tools_are_left_out_and_named_in_a_header(make_app) -> None:
    app = await make_app(MODELS, unsupported_tools="omit")
    raw = await app.client().responses.with_raw_response.create(**codex_request())
    assert raw.http_response.headers["x-respgate-omitted-tools"] == "web_search"
    body = raw.http_response.json()
    check_response(body)
    assert body["tools"][2] == WEB_SEARCH and body["tools"][1]["type"] == "namespace"


async def test_a_namespaced_function_is_called_by_its_own_name_in_its_namespace(make_app) -> None:
    app = await make_app(MODELS, unsupported_tools="omit")
    client = app.client()
    _, final = await stream_events(client, **codex_request())
    call = final["output"][0]
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", "multi_agent_v1", "spawn_agent")
    assert json.loads(call["arguments"]) == {"task": "lint"}

    # Codex resends the whole history (store: false), the call with its namespace included.
    history = codex_request()["input"] + [
        {key: call[key] for key in ("type", "id", "call_id", "name", "namespace", "arguments", "status")},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "agent 7 started"},
    ]
    _, second = await stream_events(client, **codex_request(input=history))
    assert second["output"][0]["content"][0]["text"] == "The helper is running."


def test_providers_see_namespaced_calls_under_the_name_the_model_knows() -> None:
    items = [
        {"type": "function_call", "call_id": "c", "name": "spawn_agent", "namespace": "ns", "arguments": "{}"}
    ]
    assert for_model(items) == [
        {"type": "function_call", "call_id": "c", "name": "ns__spawn_agent", "arguments": "{}"}
    ]
