"""The real 0.5B model through the whole server, over HTTP with the official SDK (issue: local by default).

One llama-server serves the module. The gateway runs with no configured model name but the local
default, so `gpt-4.1` (the seed's model) is routed to it, as `respgate serve` does with no config file.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import pytest_asyncio
from support.events import check_response
from support.harness import App, open_app, stream_events

from respgate.config import LOCAL_DEFAULT_MODEL, load_settings
from respgate.storage.sql import open_store

pytestmark = [pytest.mark.asyncio, pytest.mark.local_model]

DATA = Path(__file__).resolve().parent.parent / "data"
SEED_BYTES = (DATA / "seed_request.json").read_bytes()
SEED = json.loads(SEED_BYTES)
EXPECTED_CALLS = [
    ("current_time", {}),
    ("system_info", {}),
    ("math_calculator", {"a": 123.5, "b": 456.7, "operation": "add"}),
    ("random_generator", {"min": 1, "max": 100, "count": 3}),
]
OUTPUTS = {
    "current_time": "2026-11-25 18:00:00",
    "system_info": '{"os": "Linux", "python": "3.11.7", "memory_total_gib": 23.5}',
    "math_calculator": '{"result": 580.2}',
    "random_generator": '{"numbers": [17, 42, 88]}',
}


@pytest_asyncio.fixture(scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[App]:
    # The defaults of `respgate serve` without a config file: the local model, answering any name.
    settings = load_settings(None).model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('local') / 'db.sqlite3'}"}
    )
    assert settings.default_model == LOCAL_DEFAULT_MODEL
    store = await open_store(settings.resolved_database_url())
    opened = await open_app(settings, store)
    yield opened
    await opened.aclose()
    await opened.gateway.aclose()


def _calls(response: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (item["name"], json.loads(item["arguments"]))
        for item in response["output"]
        if item["type"] == "function_call"
    ]


def _text(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


async def _post_seed(app: App) -> dict[str, Any]:
    answer = await app.http.post(
        "/v1/responses",
        content=SEED_BYTES,
        headers={**app.auth_headers(), "Content-Type": "application/json", "Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    check_response(body)
    return body


async def test_the_seed_verbatim_gets_the_four_calls_then_the_answer(app: App) -> None:
    first = await _post_seed(app)
    assert first["status"] == "completed"
    assert first["model"] == LOCAL_DEFAULT_MODEL  # says which model really answered
    assert _calls(first) == EXPECTED_CALLS
    assert first["usage"]["input_tokens"] > 100 and first["usage"]["output_tokens"] > 0

    outputs = [
        {"type": "function_call_output", "call_id": item["call_id"], "output": OUTPUTS[item["name"]]}
        for item in first["output"]
    ]
    client = app.client()
    second = await client.responses.create(
        model="gpt-4.1", previous_response_id=first["id"], input=outputs, tools=SEED["tools"]
    )
    assert second.status == "completed"
    assert "580.2" in second.output_text
    assert not [item for item in second.output if item.type == "function_call"]


async def test_the_seed_streamed_passes_the_validator(app: App) -> None:
    params = {key: value for key, value in SEED.items()}
    _, final = await stream_events(app.client(), **params)
    assert final["status"] == "completed"
    assert _calls(final) == EXPECTED_CALLS


async def test_a_question_needing_no_tool_gets_prose(app: App) -> None:
    response = await app.client().responses.create(
        model="gpt-4.1", input="What is the capital of France?", tools=SEED["tools"], tool_choice="auto"
    )
    assert response.status == "completed"
    assert not [item for item in response.output if item.type == "function_call"]
    assert "Paris" in response.output_text


async def test_tool_choice_none_never_calls(app: App) -> None:
    _, final = await stream_events(
        app.client(), model="gpt-4.1", input=SEED["input"], tools=SEED["tools"], tool_choice="none"
    )
    assert _calls(final) == [] and _text(final)


async def test_a_named_tool_gives_exactly_that_call(app: App) -> None:
    response = await app.client().responses.create(
        model="gpt-4.1",
        input=SEED["input"],
        tools=SEED["tools"],
        tool_choice={"type": "function", "name": "math_calculator"},
    )
    calls = [(item.name, json.loads(item.arguments)) for item in response.output if item.type == "function_call"]
    assert calls == [("math_calculator", {"a": 123.5, "b": 456.7, "operation": "add"})]


async def test_json_schema_output_validates(app: App) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    response = await app.client().responses.create(
        model="gpt-4.1",
        input="Name the capital of France and its country.",
        text={"format": {"type": "json_schema", "name": "capital", "schema": schema, "strict": True}},
    )
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), schema)


async def test_max_output_tokens_makes_it_incomplete(app: App) -> None:
    _, final = await stream_events(
        app.client(), model="gpt-4.1", input="Write a long story about a lighthouse.", max_output_tokens=16
    )
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"]["output_tokens"] <= 16


async def test_a_prompt_over_the_context_window_is_a_400(app: App) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="lighthouse " * 40000)
    assert caught.value.code == "context_length_exceeded"
    # The gateway keeps serving.
    response = await app.client().responses.create(model="gpt-4.1", input="Say hello.", max_output_tokens=16)
    assert response.status in ("completed", "incomplete")
