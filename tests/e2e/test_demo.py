"""`respgate demo` against a real server: the seed conversation, its four tools run for real."""

from __future__ import annotations

import json

import pytest
from support.harness import KEY_A, scripted

from respgate.demo import TOOLS, main, run_tool, seed_request

CALLS = [
    {"name": "current_time", "arguments": {}},
    {"name": "system_info", "arguments": {}},
    {"name": "math_calculator", "arguments": {"a": 123.5, "b": 456.7, "operation": "add"}},
    {"name": "random_generator", "arguments": {"min": 1, "max": 100, "count": 3}},
]


def test_demo_runs_the_seed_conversation(live_server, capsys: pytest.CaptureFixture[str]) -> None:
    live = live_server([scripted("gpt-4.1", {"tool_calls": CALLS}, {"text": "123.5 + 456.7 = 580.2"})])
    assert main(base_url=f"{live.server.base_url}/v1", model="gpt-4.1", api_key=KEY_A) == 0
    printed = capsys.readouterr().out
    assert "turn 1: 4 tool call(s) from gpt-4.1" in printed
    assert '-> {"result": 580.2}' in printed
    assert "123.5 + 456.7 = 580.2" in printed


def test_the_demo_sends_the_seed_request() -> None:
    request = seed_request()
    assert [tool["name"] for tool in request["tools"]] == [
        "random_generator",
        "system_info",
        "math_calculator",
        "current_time",
    ]
    assert request["tool_choice"] == "auto" and request["metadata"] == {"model_id": "32"}


@pytest.mark.parametrize(
    ("operation", "a", "b", "expected"),
    [
        ("add", 123.5, 456.7, {"result": 580.2}),
        ("subtract", 5, 7, {"result": -2}),
        ("multiply", 1.5, 4, {"result": 6.0}),
        ("divide", 1, 4, {"result": 0.25}),
        ("power", 2, 10, {"result": 1024}),
        ("divide", 1, 0, {"error": "division by zero: b must not be 0"}),
    ],
)
def test_math_calculator(operation: str, a: float, b: float, expected: dict[str, object]) -> None:
    assert (
        json.loads(run_tool("math_calculator", json.dumps({"a": a, "b": b, "operation": operation}))) == expected
    )


def test_random_generator_bounds() -> None:
    numbers = json.loads(run_tool("random_generator", '{"min": 1, "max": 100, "count": 3}'))["numbers"]
    assert len(numbers) == 3 and all(1 <= n <= 100 for n in numbers)
    assert "error" in json.loads(run_tool("random_generator", '{"count": 11}'))
    assert "error" in json.loads(run_tool("random_generator", '{"min": 5, "max": 1}'))


def test_system_info_and_time_and_unknown_tools() -> None:
    info = json.loads(run_tool("system_info", "{}"))
    assert {"os", "python_version", "memory_total_mb"} <= set(info)
    assert "time" in json.loads(run_tool("current_time", "{}"))
    assert "error" in json.loads(run_tool("no_such_tool", "{}"))
    assert "error" in json.loads(run_tool("math_calculator", '{"a": 1}'))
    assert set(TOOLS) == {"current_time", "system_info", "math_calculator", "random_generator"}
