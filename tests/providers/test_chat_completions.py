"""The chat_completions provider against a fake OpenAI Chat Completions server on loopback."""

from __future__ import annotations

import pytest
from fakes import Failure, FakeCall, FakeChatCompletions, Reply
from fakes.script import split

from respgate.config import ConfigError, ModelEntry
from respgate.protocol.errors import InvalidRequest, RateLimited, UpstreamError
from respgate.providers.base import (
    Finish,
    FunctionSpec,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from respgate.providers.chat_completions import ChatCompletionsProvider

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


async def test_text_request_and_deltas(chat_fake: FakeChatCompletions, make_provider: MakeProvider) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(text="Hello there"))

    deltas = await collect(provider, model_call(instructions="Be brief.", temperature=0.2, top_p=0.9, user="u-1"))

    assert deltas == [TextDelta("Hello there"), USAGE, Finish("stop")]
    request = chat_fake.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": "up-model",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
    }


async def test_streamed_text_arrives_in_pieces(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(text="Streaming works fine.", chunks=5, cached_tokens=4, reasoning_tokens=2))

    deltas = await collect(provider, model_call())

    assert deltas == [
        *(TextDelta(piece) for piece in split("Streaming works fine.", 5)),
        Usage(input_tokens=12, output_tokens=7, cached_tokens=4, reasoning_tokens=2),
        Finish("stop"),
    ]


async def test_reasoning_and_refusal_deltas(chat_fake: FakeChatCompletions, make_provider: MakeProvider) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(reasoning="Thinking.", refusal="I can't help with that."))

    deltas = await collect(provider, model_call())

    assert deltas == [
        ReasoningDelta(text="Thinking.", kind="content"),
        RefusalDelta("I can't help with that."),
        USAGE,
        Finish("stop"),
    ]


async def test_seed_parallel_calls_interleaved(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(calls=SEED_CALLS, chunks=3, interleave=True))

    deltas = await collect(provider, model_call([user(SEED_PROMPT)], tools=SEED_TOOLS))

    body = chat_fake.last_body
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is True
    assert body["tools"][2] == {
        "type": "function",
        "function": {
            "name": "math_calculator",
            "parameters": SEED_TOOLS[2].parameters,
            "description": "执行基本数学运算,支持加减乘除和幂运算",
            "strict": False,
        },
    }
    # Each call opens with its name, then argument pieces of different calls alternate.
    assert deltas[:4] == [ToolCallDelta(i, name=call.name, arguments="") for i, call in enumerate(SEED_CALLS)]
    assert [delta.index for delta in deltas[4:8] if isinstance(delta, ToolCallDelta)] == [0, 1, 2, 3]
    assert calls_from(deltas) == {
        0: ("current_time", {}),
        1: ("system_info", {}),
        2: ("math_calculator", {"operation": "add", "a": 123.5, "b": 456.7}),
        3: ("random_generator", {"min": 1, "max": 100, "count": 3}),
    }
    assert deltas[-2:] == [USAGE, Finish("stop")]


async def test_round_trip_context_renders_as_messages(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(text="It is 17:00."))
    items = seed_round_trip()
    items.insert(
        0, {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be exact."}]}
    )
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}]}
    items[2:2] = [reasoning, assistant("Let me check.")]
    items += [assistant("All done."), user("Thanks!")]

    await collect(provider, model_call(items, tools=SEED_TOOLS))

    assert chat_fake.last_body["messages"] == [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": SEED_PROMPT},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in SEED_CALLS
            ],
        },
        *({"role": "tool", "tool_call_id": call_id, "content": out} for call_id, out in SEED_OUTPUTS.items()),
        {"role": "assistant", "content": "All done."},
        {"role": "user", "content": "Thanks!"},
    ]


async def test_reasoning_content_replay_when_configured(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake, send_reasoning_content=True)
    chat_fake.enqueue(Reply(text="ok"))
    reasoning = {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "I should call."}],
    }
    call = {"type": "function_call", "call_id": "c1", "name": "current_time", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "c1", "output": "noon"}

    await collect(provider, model_call([user("time?"), reasoning, call, output], tools=SEED_TOOLS))

    assert chat_fake.last_body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "I should call.",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "current_time", "arguments": "{}"}}],
    }


async def test_images_and_tool_output_parts(chat_fake: FakeChatCompletions, make_provider: MakeProvider) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(text="A cat."))
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "low"}
    question = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What is it?"}, image],
    }
    call = {"type": "function_call", "call_id": "c1", "name": "current_time", "arguments": "{}"}
    parts = [{"type": "input_text", "text": "twelve"}, {"type": "input_text", "text": " o'clock"}]
    output = {"type": "function_call_output", "call_id": "c1", "output": parts}

    await collect(provider, model_call([question, call, output], tools=SEED_TOOLS))

    messages = chat_fake.last_body["messages"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
    ]
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "twelve o'clock"}


async def test_strict_tool_and_json_schema_pass_through(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    tool = FunctionSpec(name="add", description=None, parameters=schema, strict=True)
    text_format = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    chat_fake.enqueue(Reply(text='{"a": 1}'))

    await collect(provider, model_call(tools=[tool], text_format=text_format))

    body = chat_fake.last_body
    assert body["tools"] == [
        {"type": "function", "function": {"name": "add", "parameters": schema, "strict": True}}
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


async def test_json_object_and_reasoning_effort(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake, params={"top_k": 20, "temperature": 0.9})
    chat_fake.enqueue(Reply(text="{}"))

    await collect(
        provider, model_call(text_format={"type": "json_object"}, reasoning_effort="low", temperature=0.1)
    )

    body = chat_fake.last_body
    assert body["response_format"] == {"type": "json_object"}
    assert body["reasoning_effort"] == "low"
    assert (body["temperature"], body["top_k"]) == (0.1, 20)


async def test_tool_choice_translation(chat_fake: FakeChatCompletions, make_provider: MakeProvider) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(text="a"), Reply(text="b"), Reply(text="c"))

    await collect(
        provider, model_call(tools=SEED_TOOLS, tool_choice="required", allowed_tools=frozenset({"system_info"}))
    )
    named = chat_fake.last_body
    await collect(provider, model_call(tools=SEED_TOOLS, allowed_tools=frozenset({"system_info", "current_time"})))
    subset = chat_fake.last_body
    await collect(provider, model_call(tools=SEED_TOOLS, tool_choice="none", parallel_tool_calls=False))
    none = chat_fake.last_body

    assert named["tool_choice"] == {"type": "function", "function": {"name": "system_info"}}
    assert [tool["function"]["name"] for tool in named["tools"]] == ["system_info"]
    assert subset["tool_choice"] == "auto"
    assert [tool["function"]["name"] for tool in subset["tools"]] == ["system_info", "current_time"]
    assert none["tool_choice"] == "none"
    assert len(none["tools"]) == 4
    assert none["parallel_tool_calls"] is False


async def test_max_output_tokens_and_length_finish(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    legacy = await make_provider("chat_completions", chat_fake, max_tokens_field="max_tokens")
    chat_fake.enqueue(Reply(text="Once upon", finish="length"), Reply(text="x", finish="content_filter"))

    deltas = await collect(provider, model_call(max_output_tokens=3))
    assert chat_fake.last_body["max_completion_tokens"] == 3
    assert deltas[-1] == Finish("length")

    deltas = await collect(legacy, model_call(max_output_tokens=3))
    assert chat_fake.last_body["max_tokens"] == 3
    assert "max_completion_tokens" not in chat_fake.last_body
    assert deltas[-1] == Finish("content_filter")


async def test_upstream_500_is_retryable(chat_fake: FakeChatCompletions, make_provider: MakeProvider) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Failure(status=500, message="The server had an error."))

    deltas, error = await collect_until_error(provider, model_call())

    assert deltas == []
    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (True, 500)
    assert "The server had an error." in error.message


async def test_upstream_429_is_a_rate_limit_with_its_wait(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Failure(status=429, message="Rate limit reached.", headers={"retry-after-ms": "1500"}))

    _, error = await collect_until_error(provider, model_call())

    assert isinstance(error, RateLimited)
    assert (error.code, error.retry_after) == ("rate_limit_exceeded", 1.5)
    assert error.message == "Rate limit reached for gpt-4.1. Please try again in 1.5s."
    assert error.headers == {"Retry-After": "2", "retry-after-ms": "1500"}


async def test_an_exhausted_quota_is_not_a_rate_limit(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    """OpenAI's `insufficient_quota` 429 is the operator's billing, not the client's pace: a failover."""
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Failure(status=429, message="You exceeded your current quota.", code="insufficient_quota"))

    _, error = await collect_until_error(provider, model_call())

    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (True, 429)
    assert "You exceeded your current quota." in error.message


async def test_upstream_400_names_the_upstream_message(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Failure(status=400, message="Invalid value for 'temperature': must be <= 2."))

    _, error = await collect_until_error(provider, model_call(temperature=5.0))

    assert isinstance(error, InvalidRequest)
    assert error.message == "Upstream rejected the request: Invalid value for 'temperature': must be <= 2."


async def test_refused_credentials_never_echo_the_key(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake, api_key="sk-wrong-secret-value")

    _, error = await collect_until_error(provider, model_call())

    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (False, 401)
    assert "credentials" in error.message
    assert "sk-wrong" not in error.message


async def test_disconnect_mid_stream_is_not_retryable(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake)
    chat_fake.enqueue(Reply(text="This answer breaks off", chunks=6, disconnect_after=3))

    deltas, error = await collect_until_error(provider, model_call())

    assert deltas == [TextDelta(piece) for piece in split("This answer breaks off", 6)[:2]]
    assert isinstance(error, UpstreamError)
    assert error.retryable is False


async def test_unreachable_upstream_is_retryable(make_provider: MakeProvider) -> None:
    closed = FakeChatCompletions()
    await closed.start()
    await closed.aclose()  # the port is now free and refuses connections
    provider = await make_provider("chat_completions", closed)

    _, error = await collect_until_error(provider, model_call())

    assert isinstance(error, UpstreamError)
    assert error.retryable is True


async def test_missing_capabilities_are_refused_before_sending(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    caps = {"images": False, "json_schema": False, "parallel_tool_calls": False, "reasoning": False}
    provider = await make_provider("chat_completions", chat_fake, capabilities=caps)
    image = {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"}
    picture = {"type": "message", "role": "user", "content": [image]}
    document = {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}
    schema_format = {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}

    cases = [
        (model_call([picture]), "input_image"),
        (model_call([{"type": "message", "role": "user", "content": [document]}]), "input_file"),
        (model_call(text_format=schema_format), "json_schema"),
        (model_call(tools=SEED_TOOLS, parallel_tool_calls=False), "parallel_tool_calls"),
        (model_call(reasoning_effort="high"), "reasoning"),
    ]
    for call, feature in cases:
        _, error = await collect_until_error(provider, call)
        assert isinstance(error, InvalidRequest)
        assert feature in error.message
    assert chat_fake.requests == []


async def test_strict_flag_omitted_when_the_server_lacks_it(
    chat_fake: FakeChatCompletions, make_provider: MakeProvider
) -> None:
    provider = await make_provider("chat_completions", chat_fake, capabilities={"strict": False})
    chat_fake.enqueue(Reply(calls=(FakeCall(name="current_time", arguments="{}"),)))

    deltas = await collect(provider, model_call(tools=[SEED_TOOLS[3]]))

    assert "strict" not in chat_fake.last_body["tools"][0]["function"]
    assert calls_from(deltas) == {0: ("current_time", {})}


def test_settings_errors_never_echo_secrets() -> None:
    entry = ModelEntry(name="m", provider="chat_completions", api_key=["sk-list-secret"], colour="blue")

    with pytest.raises(ConfigError) as caught:
        ChatCompletionsProvider(entry)

    assert "api_key" in str(caught.value)
    assert "colour" in str(caught.value)
    assert "sk-list-secret" not in str(caught.value)


def test_missing_key_environment_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESPGATE_TEST_MISSING_KEY", raising=False)
    entry = ModelEntry(name="m", provider="chat_completions", api_key_env="RESPGATE_TEST_MISSING_KEY")

    with pytest.raises(ConfigError, match="RESPGATE_TEST_MISSING_KEY"):
        ChatCompletionsProvider(entry)
