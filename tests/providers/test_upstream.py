"""Shared plumbing: the SSE decoder, and that the fakes speak the documented wire formats."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeAnthropic, FakeCall, FakeChatCompletions, FakeResponses, Reply
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from respgate.config import ModelEntry
from respgate.protocol.errors import UpstreamError
from respgate.providers.anthropic import AnthropicProvider
from respgate.providers.base import TextDelta
from respgate.providers.chat_completions import ChatCompletionsProvider
from respgate.providers.openai_responses import OpenAIResponsesProvider
from respgate.providers.registry import build_provider
from respgate.providers.scripted import ScriptedProvider
from respgate.providers.sse import SSEDecoder, SSEEvent
from respgate.providers.upstream_settings import merge_params

from .calls import collect_until_error, model_call
from .conftest import MakeProvider

RICH = Reply(
    text="Hello",
    reasoning="Plan.",
    encrypted_reasoning="gAAAAABblob",
    calls=(FakeCall(name="f", arguments='{"a": 1}'), FakeCall(name="g", arguments="{}")),
    chunks=2,
    interleave=True,
)


def test_sse_decoder_handles_split_lines_crlf_and_comments() -> None:
    decoder = SSEDecoder()
    stream = (
        b': keep-alive\r\nevent: ping\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: \xe4\xbd\xa0\n\ndata: [DONE]\r\r'
    )
    events: list[SSEEvent] = []
    for start in range(0, len(stream), 3):  # three-byte pieces split CRLF pairs and UTF-8 sequences
        events += decoder.feed(stream[start : start + 3])

    assert events == [SSEEvent("ping", '{"a":\n1}'), SSEEvent("message", "你"), SSEEvent("message", "[DONE]")]


def test_sse_decoder_has_no_line_length_limit() -> None:
    payload = "x" * 1_000_000
    assert SSEDecoder().feed(f"data: {payload}\n\n".encode()) == [SSEEvent("message", payload)]


def test_merge_params_prefers_the_request_and_merges_mappings() -> None:
    defaults = {"top_k": 20, "reasoning": {"summary": "auto"}, "temperature": 1.0}
    body = {"temperature": 0.1, "reasoning": {"effort": "low"}}

    assert merge_params(defaults, body) == {
        "top_k": 20,
        "reasoning": {"summary": "auto", "effort": "low"},
        "temperature": 0.1,
    }


def test_chat_fake_matches_the_sdk_types() -> None:
    body: dict[str, Any] = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    events = FakeChatCompletions().render_events(body, RICH)
    assert events[-1] == (None, "[DONE]")
    for _, data in events[:-1]:
        ChatCompletionChunk.model_validate(data, strict=True)
    ChatCompletion.model_validate(FakeChatCompletions().render_json(body, RICH))


def test_responses_fake_matches_the_sdk_types() -> None:
    body: dict[str, Any] = {"model": "m", "stream": True, "include": ["reasoning.encrypted_content"]}
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for name, data in FakeResponses().render_events(body, RICH):
        event = adapter.validate_python(data)
        assert event.type == name
    Response.model_validate(FakeResponses().render_json(body, RICH))


def test_anthropic_fake_blocks_follow_each_other() -> None:
    events = [data for _, data in FakeAnthropic().render_events({"model": "m", "stream": True}, RICH)]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    open_block = None
    for event in events:
        if event["type"] == "content_block_start":
            assert open_block is None
            open_block = event["index"]
        elif event["type"] in ("content_block_delta", "content_block_stop"):
            assert event["index"] == open_block
            if event["type"] == "content_block_stop":
                open_block = None


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("chat_completions", ChatCompletionsProvider),
        ("openai_responses", OpenAIResponsesProvider),
        ("anthropic", AnthropicProvider),
    ],
)
def test_registry_builds_each_remote_provider(kind: str, cls: type) -> None:
    entry = ModelEntry(name="m", provider=kind, base_url="http://127.0.0.1:9")
    assert isinstance(build_provider(entry), cls)


@pytest.mark.parametrize(
    ("kind", "fake_fixture"),
    [("chat_completions", "chat_fake"), ("openai_responses", "responses_fake"), ("anthropic", "anthropic_fake")],
)
async def test_in_stream_error_after_text_is_not_retryable(
    kind: str, fake_fixture: str, request: pytest.FixtureRequest, make_provider: MakeProvider
) -> None:
    fake = request.getfixturevalue(fake_fixture)
    provider = await make_provider(kind, fake)
    fake.enqueue(Reply(text="Partial", stream_error="Overloaded mid-stream."))

    deltas, error = await collect_until_error(provider, model_call())

    assert deltas == [TextDelta("Partial")]
    assert isinstance(error, UpstreamError)
    assert error.retryable is False
    assert "Overloaded mid-stream." in error.message


def test_registry_builds_the_scripted_provider() -> None:
    entry = ModelEntry(name="m", provider="scripted", script=[{"text": "hi"}])
    assert isinstance(build_provider(entry), ScriptedProvider)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_sse_decoder_gives_the_same_events_however_the_stream_is_cut(newline: str) -> None:
    """The LF fast path and the general parser agree, for every split point of the byte stream."""
    lines = [
        ": keep-alive",
        "event: response.output_text.delta",
        'data: {"delta":"héllo"}',
        "",
        "data: first line",
        "data",
        "data:second",
        "",
        "event: done",
        "data: [DONE]",
        "",
        "",
    ]
    stream = newline.join(lines).encode()
    expected = [
        SSEEvent("response.output_text.delta", '{"delta":"héllo"}'),
        SSEEvent("message", "first line\n\nsecond"),
        SSEEvent("done", "[DONE]"),
    ]
    for cut in range(len(stream) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert events == expected, (newline, cut)
