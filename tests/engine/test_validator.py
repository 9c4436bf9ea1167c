"""The stream validator itself: each rule it enforces rejects a stream that breaks it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from support.events import check_stream
from support.sse import parse_sse_text

from engine.builder_support import run
from respgate.providers.base import Finish, TextDelta, ToolCallDelta, ToolCallEnd, Usage

Events = list[dict[str, Any]]


def _valid() -> Events:
    return run(
        [
            TextDelta("Hi "),
            TextDelta("there"),
            ToolCallDelta(0, name="get_weather", arguments='{"city":'),
            ToolCallDelta(0, arguments='"Oslo"}'),
            ToolCallEnd(0),
            ToolCallDelta(1, name="get_weather", arguments='{"city":"Rome"}'),
            ToolCallEnd(1),
            Usage(4, 6),
            Finish("stop"),
        ]
    )


def _index(events: Events, kind: str, nth: int = 0) -> int:
    return [i for i, event in enumerate(events) if event["type"] == kind][nth]


def _renumber(events: Events) -> Events:
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _drop(kind: str, nth: int = 0) -> Callable[[Events], Events]:
    def mutate(events: Events) -> Events:
        del events[_index(events, kind, nth)]
        return _renumber(events)

    return mutate


def _set(kind: str, key: str, value: Any, nth: int = 0) -> Callable[[Events], Events]:
    def mutate(events: Events) -> Events:
        events[_index(events, kind, nth)][key] = value
        return events

    return mutate


def _gap(events: Events) -> Events:
    events[3]["sequence_number"] += 1
    return events


def _two_terminals(events: Events) -> Events:
    extra = copy.deepcopy(events[-1])
    return _renumber([*events, extra])


def _interleave(events: Events) -> Events:
    # Move the second item's `added` before the first call's `done`.
    second = _index(events, "response.output_item.added", 2)
    first_done = _index(events, "response.output_item.done", 1)
    events.insert(first_done, events.pop(second))
    return _renumber(events)


def _final(mutate: Callable[[dict[str, Any]], None]) -> Callable[[Events], Events]:
    def apply(events: Events) -> Events:
        mutate(events[-1]["response"])
        return events

    return apply


def _delta_before_part(events: Events) -> Events:
    part = _index(events, "response.content_part.added")
    delta = _index(events, "response.output_text.delta")
    events[part], events[delta] = events[delta], events[part]
    return _renumber(events)


def _change_item_id(events: Events) -> Events:
    events[_index(events, "response.output_item.done")]["item"]["id"] = "msg_other"
    return events


def _wrong_usage(response: dict[str, Any]) -> None:
    response["usage"]["total_tokens"] += 1


MUTATIONS: dict[str, Callable[[Events], Events]] = {
    "no in_progress": _drop("response.in_progress"),
    "sequence gap": _gap,
    "two terminal events": _two_terminals,
    "items interleaved": _interleave,
    "item never done": _drop("response.output_item.done", 2),
    "delta before its part": _delta_before_part,
    "delta lost": _drop("response.output_text.delta", 1),
    "arguments delta lost": _drop("response.function_call_arguments.delta", 0),
    "arguments.done without name": _set("response.function_call_arguments.done", "name", None),
    "output_index gap": _set("response.output_item.added", "output_index", 5, 1),
    "item id changed": _change_item_id,
    "delta names another item": _set("response.output_text.delta", "item_id", "msg_other"),
    "response id changed": _final(lambda response: response.update(id="resp_other")),
    "final output differs": _final(lambda response: response["output"].pop()),
    "status disagrees": _final(lambda response: response.update(status="incomplete")),
    "usage does not add up": _final(_wrong_usage),
    "usage missing": _final(lambda response: response.update(usage=None)),
    "type unknown to the SDK": _set("response.output_text.delta", "delta", 42),
}


def test_the_unmutated_stream_passes() -> None:
    check_stream(_valid())


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_broken_stream_is_rejected(name: str) -> None:
    with pytest.raises((AssertionError, ValidationError, KeyError)):
        check_stream(MUTATIONS[name](_valid()))


def test_sse_parsing_rejects_done_and_bad_data() -> None:
    assert parse_sse_text(': ping\n\nevent: x\ndata: {"type":"x"}\n\n').events == [{"type": "x"}]
    for text in ("data: [DONE]\n\n", "data: not json\n\n", 'event: a\ndata: {"type":"b"}\n\n', "garbage\n\n"):
        with pytest.raises((AssertionError, ValueError)):
            parse_sse_text(text)
