"""The event builder: neutral deltas in, a valid Responses event stream out (reference §6.3/§6.4)."""

from __future__ import annotations

from typing import Any

import pytest
from support.events import check_stream

from engine.builder_support import WEATHER, builder, run
from respgate.engine.builder import EventBuilder
from respgate.protocol.errors import GenerationFailed, UpstreamError
from respgate.providers.base import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)


def test_text_answer() -> None:
    events = run([TextDelta("Hel"), TextDelta("lo"), Usage(5, 2), Finish("stop")])
    final = check_stream(events)
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["total_tokens"] == 7


def test_empty_answer_completes_with_no_output() -> None:
    final = check_stream(run([Finish("stop")]))
    assert final["status"] == "completed" and final["output"] == []


def test_reasoning_text_and_calls_in_order() -> None:
    deltas = [
        ReasoningDelta(text="think "),
        ReasoningDelta(text="hard"),
        ReasoningDelta(text="raw", kind="content"),
        TextDelta("Checking."),
        ToolCallDelta(0, name="get_weather", arguments='{"city":'),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallEnd(0),
        Usage(10, 10, reasoning_tokens=3),
        Finish("stop"),
    ]
    final = check_stream(run(deltas))
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "think hard"}]
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "raw"}]
    assert final["output"][2]["arguments"] == '{"city":"Paris"}'
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 3


def test_encrypted_reasoning_only_when_included() -> None:
    deltas = [ReasoningDelta(text="t", encrypted_content="opaque"), TextDelta("x"), Finish("stop")]
    assert "encrypted_content" not in check_stream(run(deltas))["output"][0]
    with_it = check_stream(run(deltas, builder(include_encrypted_reasoning=True)))
    assert with_it["output"][0]["encrypted_content"] == "opaque"


def test_interleaved_calls_are_serialised() -> None:
    deltas = [
        ToolCallDelta(0, name="get_weather", arguments='{"ci'),
        ToolCallDelta(1, name="get_weather", arguments='{"city":"Rome"}'),
        ToolCallDelta(0, arguments='ty":"Oslo"}'),
        Finish("stop"),  # no ToolCallEnd: calls are released at the finish
    ]
    events = run(deltas)
    final = check_stream(events)
    assert [item["arguments"] for item in final["output"]] == ['{"city":"Oslo"}', '{"city":"Rome"}']
    assert len({item["call_id"] for item in final["output"]}) == 2


def test_text_then_refusal_are_two_parts() -> None:
    final = check_stream(run([TextDelta("Sure, "), RefusalDelta("no."), Finish("stop")]))
    assert final["output"][0]["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "Sure, "},
        {"type": "refusal", "refusal": "no."},
    ]


def test_length_finish_is_incomplete_and_drops_unfinished_calls() -> None:
    deltas = [
        TextDelta("cut"),
        ToolCallDelta(0, name="get_weather", arguments='{"ci'),
        Usage(3, 16),
        Finish("length"),
    ]
    events = run(deltas)
    final = check_stream(events)
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["type"] for item in final["output"]] == ["message"]
    assert final["output"][0]["status"] == "incomplete"


def test_content_filter_finish() -> None:
    final = check_stream(run([TextDelta("abc"), Finish("content_filter")]))
    assert final["incomplete_details"] == {"reason": "content_filter"}


def test_max_calls_drops_the_rest() -> None:
    deltas = [
        ToolCallDelta(0, name="get_weather", arguments='{"city":"A"}'),
        ToolCallEnd(0),
        ToolCallDelta(1, name="get_weather", arguments='{"city":"B"}'),
        ToolCallEnd(1),
        Finish("stop"),
    ]
    final = check_stream(run(deltas, builder(max_calls=1)))
    assert [item["arguments"] for item in final["output"]] == ['{"city":"A"}']


@pytest.mark.parametrize("arguments", ['{"city": 1}', '{"town":"x"}', "not json", "[1]"])
def test_bad_arguments_raise_before_anything_is_sent(arguments: str) -> None:
    built = builder()
    built.opening()
    built.feed(ToolCallDelta(0, name="get_weather", arguments=arguments))
    with pytest.raises(GenerationFailed):
        built.feed(ToolCallEnd(0))
    assert not built.emitted_output
    assert all(not event["type"].startswith("response.function_call") for event in built.events)


def test_calls_to_tools_not_allowed_fail() -> None:
    built = builder(allowed_tools=frozenset())
    built.opening()
    built.feed(ToolCallDelta(0, name="get_weather", arguments='{"city":"A"}'))
    with pytest.raises(GenerationFailed, match="not available"):
        built.feed(ToolCallEnd(0))


def test_json_output_is_checked_at_the_finish() -> None:
    text_format = {
        "type": "json_schema",
        "name": "x",
        "schema": {"type": "object", "required": ["a"]},
        "strict": False,
    }
    good = check_stream(run([TextDelta('{"a": 1}'), Finish("stop")], builder(text_format=text_format)))
    assert good["status"] == "completed"
    built = builder(text_format=text_format)
    built.opening()
    built.feed(TextDelta('{"b": 1}'))
    with pytest.raises(GenerationFailed):
        built.finish()


def test_failure_mid_message() -> None:
    built = builder()
    events = built.opening() + built.feed(TextDelta("partial"))
    events += built.fail(UpstreamError("upstream went away", retryable=False))
    final = check_stream(events)
    assert final["status"] == "failed"
    assert final["error"] == {"code": "server_error", "message": "upstream went away"}
    assert final["output"][0]["status"] == "incomplete"


def test_interrupt_records_a_whole_stream() -> None:
    built: EventBuilder = builder()
    sent = built.opening() + built.feed(TextDelta("half"))
    final = built.interrupt("client_disconnected")
    assert final["status"] == "incomplete"
    assert built.events[: len(sent)] == sent
    check_stream(built.events, extra_reasons=frozenset({"client_disconnected"}))


def test_reset_pending_forgets_unreleased_calls() -> None:
    built = builder()
    events = built.opening()
    built.feed(ToolCallDelta(0, name="get_weather", arguments='{"city": 1}'))
    built.reset_pending()
    events += built.feed(ToolCallDelta(0, name="get_weather", arguments='{"city":"Oslo"}'))
    events += built.feed(ToolCallEnd(0)) + built.finish()
    assert check_stream(events)["output"][0]["arguments"] == '{"city":"Oslo"}'


def test_no_tools_means_calls_fail() -> None:
    built = builder(tools=[])
    built.opening()
    built.feed(ToolCallDelta(0, name=WEATHER.name, arguments="{}"))
    with pytest.raises(GenerationFailed):
        built.finish()


@pytest.mark.parametrize(
    "deltas",
    [
        [ReasoningDelta(text="sum"), ReasoningDelta(text="raw", kind="content"), TextDelta("Hi."), Finish("stop")],
        [RefusalDelta("No."), Usage(3, 1), Finish("stop")],
        [TextDelta("cut"), Finish("length")],
        [ToolCallDelta(0, name="get_weather", arguments='{"city":"Oslo"}'), ToolCallEnd(0), Finish("stop")],
        [Finish("stop")],
    ],
    ids=["reasoning", "refusal", "incomplete", "call", "empty"],
)
def test_a_replay_of_the_final_response_is_a_valid_stream_of_it(deltas: list[Any]) -> None:
    final = check_stream(run(deltas))
    replayed = EventBuilder.replay(final, obfuscate=False)
    assert check_stream(replayed) == final
    assert not any("obfuscation" in event for event in replayed)


def test_a_replay_of_a_failed_response_ends_failed() -> None:
    built = builder()
    events = built.opening() + built.feed(TextDelta("partial")) + built.fail(UpstreamError("gone"))
    final = check_stream(events)
    assert check_stream(EventBuilder.replay(final)) == final
