"""Reading model output: call intent in free text, and `<tool_call>` blocks as they stream."""

from __future__ import annotations

import pytest

from respgate.providers.base import ToolCallDelta, ToolCallEnd
from respgate.providers.local.parse import CallIntentDetector, ToolCallParser, classify_block

TOOLS = {"current_time", "math_calculator"}


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ('```json\n{\n  "name": "current_time"', "call"),
        ('{"name": "math_calculator", "arguments"', "call"),
        ('<tool_call>\n{"name": "current_time"}', "call"),
        ('[{"name": "current_time"', "call"),
        ('```json\n{"name": "joke"', "answer"),
        ("```js", "undecided"),
        ('{"na', "undecided"),
        ("```python\nprint(1)", "text"),
        ('{"city": "Paris"}', "text"),
    ],
)
def test_classify_block(text: str, intent: str) -> None:
    assert classify_block(text, TOOLS) == intent


def _feed_all(detector: CallIntentDetector, text: str, step: int = 3) -> str:
    return "".join(detector.feed(text[i : i + step]) for i in range(0, len(text), step))


def test_prose_passes_through_and_code_blocks_are_released() -> None:
    detector = CallIntentDetector(tool_names=TOOLS)
    text = "Here is code:\n```python\nprint('hi')\n```\nDone."

    shown = _feed_all(detector, text) + detector.flush()

    assert shown == text
    assert detector.intent == "undecided"


def test_a_fenced_call_after_prose_is_held_back() -> None:
    detector = CallIntentDetector(tool_names=TOOLS)

    shown = _feed_all(detector, 'Let me check.\n```json\n{"name": "current_time", "arguments": {}}\n```')

    assert shown == "Let me check.\n"
    assert detector.intent == "call"
    assert detector.flush() == ""


def _parse(text: str, *, step: int = 4, **options: object) -> tuple[ToolCallParser, list[object]]:
    parser = ToolCallParser(**options)  # type: ignore[arg-type]
    deltas: list[object] = []
    for i in range(0, len(text), step):
        deltas.extend(parser.feed(text[i : i + step]))
        if parser.should_stop:
            break
    deltas.extend(parser.finish())
    return parser, deltas


def _calls(deltas: list[object]) -> dict[int, list[str]]:
    calls: dict[int, list[str]] = {}
    for delta in deltas:
        if isinstance(delta, ToolCallDelta):
            entry = calls.setdefault(delta.index, ["", ""])
            entry[0] += delta.name or ""
            entry[1] += delta.arguments
    return calls


GRAMMAR_A_OUTPUT = (
    '<tool_call>\n{"name": "current_time", "arguments": {}}\n</tool_call>\n'
    '<tool_call>\n{"name": "math_calculator", "arguments": {"a": 123.5, "b": 456.7, "operation": "add", '
    '"note": "a \\"quoted\\" }"}}\n</tool_call>'
)


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_tool_calls_stream_as_compact_json(step: int) -> None:
    _, deltas = _parse(GRAMMAR_A_OUTPUT, step=step, max_calls=16)

    assert _calls(deltas) == {
        0: ["current_time", "{}"],
        1: ["math_calculator", '{"a":123.5,"b":456.7,"operation":"add","note":"a \\"quoted\\" }"}'],
    }
    assert [d for d in deltas if isinstance(d, ToolCallEnd)] == [ToolCallEnd(0), ToolCallEnd(1)]
    first = next(d for d in deltas if isinstance(d, ToolCallDelta) and d.index == 1)
    assert first.name == "math_calculator"


def test_an_exact_repeat_is_dropped_and_stops_generation() -> None:
    block = '<tool_call>\n{"name": "current_time", "arguments": {}}\n</tool_call>\n'
    parser, deltas = _parse(block * 3, max_calls=16)

    assert _calls(deltas) == {0: ["current_time", "{}"]}
    assert parser.should_stop


def test_same_tool_with_other_arguments_is_kept() -> None:
    text = (
        '<tool_call>\n{"name": "math_calculator", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n'
        '<tool_call>\n{"name": "math_calculator", "arguments": {"a": 1, "b": 3}}\n</tool_call>'
    )
    _, deltas = _parse(text, max_calls=16)

    assert _calls(deltas) == {0: ["math_calculator", '{"a":1,"b":2}'], 1: ["math_calculator", '{"a":1,"b":3}']}


def test_calls_answered_earlier_count_as_repeats() -> None:
    text = '<tool_call>\n{"name": "current_time", "arguments": {}}\n</tool_call>'
    parser, deltas = _parse(text, max_calls=16, seen=[("current_time", "{}")])

    assert deltas == []
    assert parser.done == [] and parser.should_stop


def test_max_calls_stops_after_the_limit() -> None:
    parser, deltas = _parse(GRAMMAR_A_OUTPUT, max_calls=1)

    assert _calls(deltas) == {0: ["current_time", "{}"]}
    assert parser.should_stop


def test_a_call_cut_short_stays_open() -> None:
    parser, deltas = _parse('<tool_call>\n{"name": "math_calculator", "arguments": {"a": 1', max_calls=4)

    assert _calls(deltas) == {0: ["math_calculator", '{"a":1']}
    assert not any(isinstance(d, ToolCallEnd) for d in deltas)
    assert parser.open_call
