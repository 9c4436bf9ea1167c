"""`POST /v1/responses/input_tokens` (§1, §10 row 17): the context a create would build, counted."""

from __future__ import annotations

import json

import openai
import pytest
from support.harness import KEY_B, scripted

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MODELS = [
    scripted("turns", {"text": "First answer."}, {"text": "Second answer."}),
    scripted(
        "calls", {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}, {"text": "Sunny."}
    ),
    # A provider that cannot count: the engine estimates. Counting never reaches its (closed) upstream.
    {"name": "remote", "provider": "chat_completions", "base_url": "http://127.0.0.1:9/v1", "upstream_model": "m"},
]


async def test_the_count_has_openai_shape(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    counted = await client.responses.input_tokens.count(model="turns", input="hi")
    body = json.loads(app.recorder.exchanges[-1].body)
    assert list(body) == ["object", "input_tokens"]
    assert body["object"] == "response.input_tokens"
    assert isinstance(body["input_tokens"], int) and counted.input_tokens == body["input_tokens"] > 0


async def test_a_provider_that_counts_agrees_with_the_usage_it_reports(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    params = {"model": "turns", "input": "What is the weather like?", "instructions": "Be brief."}
    counted = await client.responses.input_tokens.count(**params)
    created = await client.responses.create(**params)
    assert created.usage is not None and counted.input_tokens == created.usage.input_tokens
    # The history is counted too: by previous_response_id, and by conversation.
    chained = await client.responses.input_tokens.count(
        model="turns", input="And tomorrow?", previous_response_id=created.id
    )
    follow = await client.responses.create(model="turns", input="And tomorrow?", previous_response_id=created.id)
    assert follow.usage is not None and chained.input_tokens == follow.usage.input_tokens
    assert chained.input_tokens > counted.input_tokens
    conversation = await client.conversations.create(
        items=[{"role": "user", "content": "What is the weather like?"}]
    )
    in_conversation = await client.responses.input_tokens.count(
        model="turns", input="And tomorrow?", conversation=conversation.id
    )
    answered = await client.responses.create(model="turns", input="And tomorrow?", conversation=conversation.id)
    assert answered.usage is not None and in_conversation.input_tokens == answered.usage.input_tokens
    # Counting does not add to the conversation: only the create's turn is there.
    assert len((await client.conversations.items.list(conversation.id)).data) == 3


async def test_without_a_counting_provider_the_estimate_is_a_token_per_four_bytes(make_app) -> None:
    client = (await make_app(MODELS)).client()
    short = await client.responses.input_tokens.count(model="remote", input="hi")
    longer = await client.responses.input_tokens.count(model="remote", input="hi" + "x" * 400)
    assert short.input_tokens > 0
    assert longer.input_tokens - short.input_tokens == 100
    with_tools = await client.responses.input_tokens.count(model="remote", input="hi", tools=[WEATHER])
    assert with_tools.input_tokens > short.input_tokens


async def test_model_is_optional(make_app) -> None:
    client = (await make_app(MODELS)).client()
    without = await client.responses.input_tokens.count(input="hi")
    assert (
        without.input_tokens == (await client.responses.input_tokens.count(model="turns", input="hi")).input_tokens
    )
    assert (await client.responses.input_tokens.count()).input_tokens > 0


async def test_the_create_checks_apply(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    asked = await client.responses.create(model="calls", input="weather?", tools=[WEATHER])
    call = next(item for item in asked.output if item.type == "function_call")
    refused = [
        (
            client.responses.input_tokens.count(model="calls", input="well?", previous_response_id=asked.id),
            ("input", None, f"No tool output found for function call {call.call_id}."),
        ),
        (
            client.responses.input_tokens.count(model="turns", previous_response_id="resp_unknown"),
            (
                "previous_response_id",
                "previous_response_not_found",
                "Previous response with id 'resp_unknown' not found.",
            ),
        ),
        (
            client.responses.input_tokens.count(model="turns", extra_body={"stream": True}),
            ("stream", "unknown_parameter", "Unknown parameter: 'stream'."),
        ),
    ]
    for request, (param, code, message) in refused:
        with pytest.raises(openai.BadRequestError) as caught:
            await request
        assert (caught.value.param, caught.value.code, caught.value.body["message"]) == (param, code, message)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.input_tokens.count(model="turns", tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.body["message"]
    for request in (
        client.responses.input_tokens.count(model="nope", input="hi"),
        client.responses.input_tokens.count(model="turns", conversation="conv_unknown"),
    ):
        with pytest.raises(openai.NotFoundError):
            await request


async def test_another_keys_history_is_not_counted(make_app) -> None:
    app = await make_app(MODELS)
    created = await app.client().responses.create(model="turns", input="hi")
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client(KEY_B).responses.input_tokens.count(model="turns", previous_response_id=created.id)
    assert caught.value.code == "previous_response_not_found"
