"""The openai_responses provider against a fake OpenAI Responses server on loopback."""

from __future__ import annotations

from fakes import Failure, FakeResponses, Reply
from fakes.script import split

from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.base import (
    Finish,
    FunctionSpec,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)

from .calls import (
    SEED_CALLS,
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


async def test_text_request_and_deltas(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(text="Hello there"))

    deltas = await collect(provider, model_call(instructions="Be brief.", temperature=0.2, user="u-1"))

    assert deltas == [TextDelta("Hello there"), USAGE, Finish("stop")]
    request = responses_fake.requests[-1]
    assert request.path == "/v1/responses"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": "up-model",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        "stream": True,
        "store": False,
        "instructions": "Be brief.",
        "temperature": 0.2,
        "user": "u-1",
    }


async def test_streamed_text_and_refusal(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(text="Streaming works.", refusal="No.", chunks=4, cached_tokens=3))

    deltas = await collect(provider, model_call())

    assert deltas == [
        *(TextDelta(piece) for piece in split("Streaming works.", 4)),
        *(RefusalDelta(piece) for piece in split("No.", 4)),
        Usage(input_tokens=12, output_tokens=7, cached_tokens=3),
        Finish("stop"),
    ]


async def test_seed_parallel_calls_interleaved(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(calls=SEED_CALLS, chunks=3, interleave=True))

    deltas = await collect(provider, model_call([user(SEED_PROMPT)], tools=SEED_TOOLS))

    body = responses_fake.last_body
    assert body["tools"][3] == {
        "type": "function",
        "name": "current_time",
        "description": "获取当前系统时间",
        "parameters": {"type": "object", "properties": {}},
        "strict": False,
    }
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("auto", True)
    assert deltas[:4] == [ToolCallDelta(i, name=call.name, arguments="") for i, call in enumerate(SEED_CALLS)]
    assert [delta.index for delta in deltas[4:8] if isinstance(delta, ToolCallDelta)] == [0, 1, 2, 3]
    assert calls_from(deltas) == {
        0: ("current_time", {}),
        1: ("system_info", {}),
        2: ("math_calculator", {"operation": "add", "a": 123.5, "b": 456.7}),
        3: ("random_generator", {"min": 1, "max": 100, "count": 3}),
    }
    assert [delta for delta in deltas if isinstance(delta, ToolCallEnd)] == [ToolCallEnd(i) for i in range(4)]
    assert deltas[-2:] == [USAGE, Finish("stop")]


async def test_round_trip_sends_the_whole_context(
    responses_fake: FakeResponses, make_provider: MakeProvider
) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(text="Done."))
    items = seed_round_trip()
    replayable = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABopaque"}
    foreign = {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "respgate.anthropic:sig"}
    summary_only = {"type": "reasoning", "id": "rs_3", "summary": [{"type": "summary_text", "text": "plan"}]}
    items[1:1] = [replayable, foreign, summary_only]

    await collect(provider, model_call(items, tools=SEED_TOOLS))

    sent = responses_fake.last_body["input"]
    assert sent[0] == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": SEED_PROMPT}]}
    assert sent[1] == {key: value for key, value in replayable.items() if key != "id"}
    assert sent[2:6] == [
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}
        for call in SEED_CALLS
    ]
    assert sent[6] == {"type": "function_call_output", "call_id": "call_time", "output": "2026-11-25T17:00:00Z"}
    assert len(sent) == 10


async def test_reasoning_with_encrypted_content(
    responses_fake: FakeResponses, make_provider: MakeProvider
) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(reasoning="Plan it.", encrypted_reasoning="gAAAAABblob", text="ok", chunks=2))

    deltas = await collect(provider, model_call(reasoning_effort="high", include_encrypted_reasoning=True))

    body = responses_fake.last_body
    assert body["reasoning"] == {"effort": "high"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert deltas == [
        ReasoningDelta(text="Plan"),
        ReasoningDelta(text=" it."),
        ReasoningDelta(encrypted_content="gAAAAABblob"),
        TextDelta("o"),
        TextDelta("k"),
        USAGE,
        Finish("stop"),
    ]


async def test_strict_tool_and_json_schema_pass_through(
    responses_fake: FakeResponses, make_provider: MakeProvider
) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    text_format = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    tool = FunctionSpec(name="add", description=None, parameters=schema, strict=True)
    responses_fake.enqueue(Reply(text='{"a": 1}'))

    await collect(provider, model_call(tools=[tool], tool_choice="required", text_format=text_format))

    body = responses_fake.last_body
    assert body["tools"] == [
        {"type": "function", "name": "add", "description": None, "parameters": schema, "strict": True}
    ]
    assert body["tool_choice"] == "required"
    assert body["text"] == {"format": text_format}


async def test_named_tool_choice(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(text="a"))

    await collect(
        provider, model_call(tools=SEED_TOOLS, tool_choice="required", allowed_tools=frozenset({"system_info"}))
    )

    assert responses_fake.last_body["tool_choice"] == {"type": "function", "name": "system_info"}


async def test_max_output_tokens_gives_length(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(text="Once", finish="length"), Reply(text="x", finish="content_filter"))

    deltas = await collect(provider, model_call(max_output_tokens=16))
    assert responses_fake.last_body["max_output_tokens"] == 16
    assert deltas == [TextDelta("Once"), USAGE, Finish("length")]

    deltas = await collect(provider, model_call())
    assert deltas[-1] == Finish("content_filter")


async def test_upstream_500_is_retryable(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Failure(status=503, message="Overloaded."))

    deltas, error = await collect_until_error(provider, model_call())

    assert deltas == []
    assert isinstance(error, UpstreamError)
    assert (error.retryable, error.upstream_status) == (True, 503)


async def test_upstream_400_names_the_upstream_message(
    responses_fake: FakeResponses, make_provider: MakeProvider
) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Failure(status=400, message="Unsupported parameter: 'temperature'."))

    _, error = await collect_until_error(provider, model_call(temperature=1.0))

    assert isinstance(error, InvalidRequest)
    assert error.message == "Upstream rejected the request: Unsupported parameter: 'temperature'."


async def test_disconnect_mid_stream_is_not_retryable(
    responses_fake: FakeResponses, make_provider: MakeProvider
) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    # created, in_progress, item added, part added, then two text deltas, then the connection drops.
    responses_fake.enqueue(Reply(text="This answer breaks off", chunks=6, disconnect_after=6))

    deltas, error = await collect_until_error(provider, model_call())

    assert deltas == [TextDelta(piece) for piece in split("This answer breaks off", 6)[:2]]
    assert isinstance(error, UpstreamError)
    assert error.retryable is False


async def test_missing_capability_is_refused(responses_fake: FakeResponses, make_provider: MakeProvider) -> None:
    provider = await make_provider("openai_responses", responses_fake, capabilities={"reasoning": False})

    _, error = await collect_until_error(
        provider, model_call([user("hi"), assistant("hello")], reasoning_effort="low")
    )

    assert isinstance(error, InvalidRequest)
    assert "reasoning" in error.message
    assert responses_fake.requests == []


async def test_done_only_events_are_neither_lost_nor_doubled(
    responses_fake: FakeResponses, make_provider: MakeProvider
) -> None:
    provider = await make_provider("openai_responses", responses_fake)
    responses_fake.enqueue(Reply(text="Whole text.", calls=SEED_CALLS[2:3], chunks=3, deltas=False))

    deltas = await collect(provider, model_call(tools=SEED_TOOLS))

    assert deltas == [
        TextDelta("Whole text."),
        ToolCallDelta(0, name="math_calculator", arguments=""),
        ToolCallDelta(0, arguments=SEED_CALLS[2].arguments),
        ToolCallEnd(0),
        USAGE,
        Finish("stop"),
    ]
