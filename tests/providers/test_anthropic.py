"""The anthropic provider against a fake Anthropic Messages server on loopback."""

from __future__ import annotations

import json

from fakes import Failure, FakeAnthropic, Reply
from fakes.script import split

from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.base import (
    Finish,
    FunctionSpec,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)

from .calls import (
    SEED_CALLS,
    SEED_OUTPUTS,
    SEED_PROMPT,
    SEED_TOOLS,
    assistant,
    calls_from,
    collect,
    collect_until_error,
    model_call,
    seed_round_trip,
    user,
)
from .conftest import API_KEY, MakeProvider

USAGE = Usage(input_tokens=12, output_tokens=7)


async def test_text_request_and_deltas(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(Reply(text="Hello there"))

    deltas = await collect(provider, model_call(instructions="Be brief.", temperature=0.2, user="u-1"))

    assert deltas == [TextDelta("Hello there"), USAGE, Finish("stop")]
    request = anthropic_fake.requests[-1]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in request.headers
    assert request.body == {
        "model": "up-model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 4096,
        "system": "Be brief.",
        "temperature": 0.2,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }


async def test_streamed_text_with_cache_usage(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake, max_tokens=1000)
    anthropic_fake.enqueue(Reply(text="Streaming works.", chunks=4, cached_tokens=5))

    deltas = await collect(provider, model_call())

    assert anthropic_fake.last_body["max_tokens"] == 1000
    assert deltas == [
        *(TextDelta(piece) for piece in split("Streaming works.", 4)),
        Usage(input_tokens=12, output_tokens=7, cached_tokens=5),
        Finish("stop"),
    ]


async def test_seed_parallel_calls(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(Reply(calls=SEED_CALLS, chunks=3))

    deltas = await collect(provider, model_call([user(SEED_PROMPT)], tools=SEED_TOOLS))

    body = anthropic_fake.last_body
    assert body["tools"][2] == {
        "name": "math_calculator",
        "description": "执行基本数学运算,支持加减乘除和幂运算",
        "input_schema": SEED_TOOLS[2].parameters,
    }
    assert body["tool_choice"] == {"type": "auto"}
    # A tool without parameters streams no JSON; its arguments are the empty object.
    assert deltas[:3] == [ToolCallDelta(0, name="current_time"), ToolCallDelta(0, arguments="{}"), ToolCallEnd(0)]
    assert calls_from(deltas) == {
        0: ("current_time", {}),
        1: ("system_info", {}),
        2: ("math_calculator", {"operation": "add", "a": 123.5, "b": 456.7}),
        3: ("random_generator", {"min": 1, "max": 100, "count": 3}),
    }
    assert [delta for delta in deltas if isinstance(delta, ToolCallEnd)] == [ToolCallEnd(i) for i in range(4)]
    assert deltas[-2:] == [USAGE, Finish("stop")]


async def test_round_trip_alternates_roles(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(Reply(text="Done."))
    items = seed_round_trip()
    items[1]["call_id"] = "functions.current_time:0"
    items[5]["call_id"] = "functions.current_time:0"
    developer = {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be exact."}]}
    items[1:1] = [developer, assistant("Let me check.")]
    items.append(user("And the weather?"))

    await collect(provider, model_call(items, instructions="You are terse.", tools=SEED_TOOLS))

    body = anthropic_fake.last_body
    assert body["system"] == [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Be exact."}]
    ids = ["functions_current_time_0", "call_info", "call_math", "call_rand"]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": SEED_PROMPT}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                *(
                    {"type": "tool_use", "id": tool_id, "name": call.name, "input": json.loads(call.arguments)}
                    for tool_id, call in zip(ids, SEED_CALLS, strict=True)
                ),
            ],
        },
        {
            "role": "user",
            "content": [
                *(
                    {"type": "tool_result", "tool_use_id": tool_id, "content": output}
                    for tool_id, output in zip(ids, SEED_OUTPUTS.values(), strict=True)
                ),
                {"type": "text", "text": "And the weather?"},
            ],
        },
    ]


async def test_thinking_round_trip(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake, capabilities={"reasoning": True})
    anthropic_fake.enqueue(Reply(reasoning="Plan.", encrypted_reasoning="U0lH", text="ok"), Reply(text="again"))

    deltas = await collect(provider, model_call(reasoning_effort="medium", max_output_tokens=16000))

    assert anthropic_fake.last_body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert anthropic_fake.last_body["max_tokens"] == 16000
    assert deltas == [
        ReasoningDelta(text="Plan."),
        ReasoningDelta(encrypted_content="respgate.anthropic:U0lH"),
        TextDelta("ok"),
        USAGE,
        Finish("stop"),
    ]

    reasoning = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Plan."}],
        "encrypted_content": "respgate.anthropic:U0lH",
    }
    openai_blob = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABopaque"}
    items = [user("Hi"), openai_blob, reasoning, assistant("ok"), user("again")]
    await collect(provider, model_call(items, reasoning_effort="low"))

    assert anthropic_fake.last_body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Plan.", "signature": "U0lH"},
            {"type": "text", "text": "ok"},
        ],
    }
    assert anthropic_fake.last_body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_images_become_image_blocks(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(Reply(text="Two cats."))
    parts = [
        {"type": "input_text", "text": "Compare"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0K", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"},
    ]

    await collect(provider, model_call([{"type": "message", "role": "user", "content": parts}]))

    assert anthropic_fake.last_body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


async def test_strict_tool_and_json_schema_when_enabled(
    anthropic_fake: FakeAnthropic, make_provider: MakeProvider
) -> None:
    caps = {"strict": True, "json_schema": True}
    provider = await make_provider("anthropic", anthropic_fake, capabilities=caps)
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    tool = FunctionSpec(name="add", description="Add.", parameters=schema, strict=True)
    text_format = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    anthropic_fake.enqueue(Reply(text='{"a": 1}'))

    await collect(provider, model_call(tools=[tool], text_format=text_format))

    body = anthropic_fake.last_body
    assert body["tools"] == [{"name": "add", "description": "Add.", "input_schema": schema, "strict": True}]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


async def test_tool_choice_translation(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(Reply(text="a"), Reply(text="b"), Reply(text="c"))
    choices = []
    for fields in (
        {"tool_choice": "required", "allowed_tools": frozenset({"system_info"})},
        {"tool_choice": "required", "parallel_tool_calls": False},
        {"tool_choice": "none"},
    ):
        await collect(provider, model_call(tools=SEED_TOOLS, **fields))
        choices.append(anthropic_fake.last_body["tool_choice"])

    assert choices == [
        {"type": "tool", "name": "system_info"},
        {"type": "any", "disable_parallel_tool_use": True},
        {"type": "none"},
    ]


async def test_max_tokens_and_refusal_finish(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(Reply(text="Once", finish="length"), Reply(text="No.", finish="content_filter"))

    deltas = await collect(provider, model_call(max_output_tokens=3))
    assert anthropic_fake.last_body["max_tokens"] == 3
    assert deltas[-1] == Finish("length")

    deltas = await collect(provider, model_call())
    assert deltas[-1] == Finish("content_filter")


async def test_upstream_errors(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    anthropic_fake.enqueue(
        Failure(status=529, message="Overloaded"),
        Failure(status=400, message="messages: roles must alternate"),
    )

    _, overloaded = await collect_until_error(provider, model_call())
    _, rejected = await collect_until_error(provider, model_call())

    assert isinstance(overloaded, UpstreamError)
    assert (overloaded.retryable, overloaded.upstream_status) == (True, 529)
    assert isinstance(rejected, InvalidRequest)
    assert rejected.message == "Upstream rejected the request: messages: roles must alternate"


async def test_refused_credentials(anthropic_fake: FakeAnthropic, make_provider: MakeProvider) -> None:
    provider = await make_provider("anthropic", anthropic_fake, api_key="sk-ant-wrong")

    _, error = await collect_until_error(provider, model_call())

    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (False, 401)
    assert "sk-ant" not in error.message


async def test_disconnect_mid_stream_is_not_retryable(
    anthropic_fake: FakeAnthropic, make_provider: MakeProvider
) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    # message_start, block start, ping, then two text deltas before the connection drops.
    anthropic_fake.enqueue(Reply(text="This answer breaks off", chunks=6, disconnect_after=5))

    deltas, error = await collect_until_error(provider, model_call())

    assert deltas == [TextDelta(piece) for piece in split("This answer breaks off", 6)[:2]]
    assert isinstance(error, UpstreamError)
    assert error.retryable is False


async def test_missing_capabilities_are_refused(
    anthropic_fake: FakeAnthropic, make_provider: MakeProvider
) -> None:
    provider = await make_provider("anthropic", anthropic_fake)
    schema_format = {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}

    _, no_schema = await collect_until_error(provider, model_call(text_format=schema_format))
    _, no_thinking = await collect_until_error(provider, model_call(reasoning_effort="high"))
    _, no_json_mode = await collect_until_error(provider, model_call(text_format={"type": "json_object"}))

    assert isinstance(no_schema, InvalidRequest) and "json_schema" in no_schema.message
    assert isinstance(no_thinking, InvalidRequest) and "reasoning" in no_thinking.message
    assert isinstance(no_json_mode, InvalidRequest) and "json_object" in no_json_mode.message
    assert anthropic_fake.requests == []
