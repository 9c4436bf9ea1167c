"""Requests and helpers shared by the provider tests: the seed's four-tool parallel call, mostly."""

from __future__ import annotations

import json
from typing import Any

from fakes import FakeCall

from respgate.protocol.errors import APIError
from respgate.providers.base import Delta, FunctionSpec, ModelCall, Provider, ToolCallDelta

SEED_PROMPT = (
    "请同时帮我做以下几件事:\n1. 获取当前系统时间\n2. 查看系统信息(操作系统、内存等)\n"
    "3. 帮我计算 123.5 + 456.7 的结果\n4. 生成3个1-100之间的随机数\n\n这是一个并行工具调用测试,请同时执行这些任务。"
)

SEED_TOOLS = [
    FunctionSpec(
        name="random_generator",
        description="生成指定范围内的随机数,支持批量生成",
        parameters={
            "type": "object",
            "properties": {
                "min": {"description": "最小值(默认1)", "type": "integer"},
                "max": {"description": "最大值(默认100)", "type": "integer"},
                "count": {"description": "生成数量(默认1,最大10)", "type": "integer"},
            },
        },
        strict=False,
    ),
    FunctionSpec(
        name="system_info",
        description="获取当前系统的基本信息,包括操作系统、Java版本、内存使用情况等",
        parameters={"type": "object", "properties": {}},
        strict=False,
    ),
    FunctionSpec(
        name="math_calculator",
        description="执行基本数学运算,支持加减乘除和幂运算",
        parameters={
            "type": "object",
            "properties": {
                "a": {"description": "第一个数字", "type": "number"},
                "b": {"description": "第二个数字", "type": "number"},
                "operation": {"description": "运算类型: add, subtract, multiply, divide, power", "type": "string"},
            },
            "required": ["operation", "a", "b"],
        },
        strict=False,
    ),
    FunctionSpec(
        name="current_time",
        description="获取当前系统时间",
        parameters={"type": "object", "properties": {}},
        strict=False,
    ),
]

SEED_CALLS = (
    FakeCall(name="current_time", arguments="{}", call_id="call_time"),
    FakeCall(name="system_info", arguments="{}", call_id="call_info"),
    FakeCall(
        name="math_calculator", arguments='{"operation": "add", "a": 123.5, "b": 456.7}', call_id="call_math"
    ),
    FakeCall(name="random_generator", arguments='{"min": 1, "max": 100, "count": 3}', call_id="call_rand"),
)

SEED_OUTPUTS = {
    "call_time": "2026-11-25T17:00:00Z",
    "call_info": '{"os": "Linux", "memory": "16 GiB"}',
    "call_math": "580.2",
    "call_rand": "[7, 42, 93]",
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def seed_round_trip() -> list[dict[str, Any]]:
    """The seed's context after the four calls ran: user, four function_call items, four outputs."""
    calls = [
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
            "id": f"fc_{n}",
        }
        for n, call in enumerate(SEED_CALLS)
    ]
    outputs = [
        {"type": "function_call_output", "call_id": call_id, "output": output}
        for call_id, output in SEED_OUTPUTS.items()
    ]
    return [user(SEED_PROMPT), *calls, *outputs]


def model_call(items: list[dict[str, Any]] | None = None, **fields: Any) -> ModelCall:
    return ModelCall(model="gpt-4.1", upstream_model="up-model", items=items or [user("Hi")], **fields)


async def collect(provider: Provider, call: ModelCall) -> list[Delta]:
    return [delta async for delta in provider.stream(call)]


async def collect_until_error(provider: Provider, call: ModelCall) -> tuple[list[Delta], APIError]:
    """The deltas that arrived before the stream failed, and the error."""
    deltas: list[Delta] = []
    try:
        async for delta in provider.stream(call):
            deltas.append(delta)
    except APIError as exc:
        return deltas, exc
    raise AssertionError(f"the stream did not fail; deltas: {deltas}")


def calls_from(deltas: list[Delta]) -> dict[int, tuple[str, Any]]:
    """Index → (name, parsed arguments), checking that the name comes on the first delta of an index."""
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for delta in deltas:
        if isinstance(delta, ToolCallDelta):
            if delta.index not in names:
                assert delta.name, f"first delta of call {delta.index} has no name"
                names[delta.index] = delta.name
            else:
                assert delta.name is None
            arguments[delta.index] = arguments.get(delta.index, "") + delta.arguments
    return {index: (names[index], json.loads(arguments[index])) for index in names}
