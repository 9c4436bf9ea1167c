"""`respgate demo`: the parallel tool-call conversation, run against a respgate server with the openai SDK.

It sends the bundled request (four tools, one prompt asking for all four), runs the calls the
model makes on this machine in parallel, sends the results back with `previous_response_id`,
and prints the model's final answer with timings.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import Any

from openai import OpenAI


def seed_request() -> dict[str, Any]:
    """The demo's first request, exactly as a client once sent it (model name aside)."""
    data: dict[str, Any] = json.loads(
        files("respgate").joinpath("data/seed_request.json").read_text(encoding="utf-8")
    )
    return data


def current_time() -> dict[str, Any]:
    now = datetime.datetime.now().astimezone()
    return {"time": now.isoformat(timespec="seconds"), "timezone": str(now.tzinfo)}


def _memory_mb() -> dict[str, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    return {
        "memory_total_mb": os.sysconf("SC_PHYS_PAGES") * page // 2**20,
        "memory_available_mb": os.sysconf("SC_AVPHYS_PAGES") * page // 2**20,
    }


def system_info() -> dict[str, Any]:
    return {
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        **_memory_mb(),
    }


_OPERATIONS: dict[str, Callable[[float, float], float]] = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "power": lambda a, b: a**b,
}


def math_calculator(*, a: float, b: float, operation: str) -> dict[str, Any]:
    if operation not in _OPERATIONS:
        return {"error": f"unknown operation {operation!r}; use one of {', '.join(_OPERATIONS)}"}
    if operation == "divide" and b == 0:
        return {"error": "division by zero: b must not be 0"}
    # Rounding hides binary float noise (123.5 + 456.7 is 580.2, not 580.2000000000001).
    return {"result": round(_OPERATIONS[operation](a, b), 10)}


def random_generator(*, min: int = 1, max: int = 100, count: int = 1) -> dict[str, Any]:
    if count < 1 or count > 10:
        return {"error": "count must be between 1 and 10"}
    if min > max:
        return {"error": "min must not be greater than max"}
    return {"numbers": [random.randint(min, max) for _ in range(count)]}


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "current_time": current_time,
    "system_info": system_info,
    "math_calculator": math_calculator,
    "random_generator": random_generator,
}


def run_tool(name: str, arguments: str) -> str:
    """One call's output as JSON text; bad calls become an error the model can read."""
    tool = TOOLS.get(name)
    if tool is None:
        return json.dumps({"error": f"unknown tool {name!r}"})
    try:
        result = tool(**json.loads(arguments or "{}"))
    except (TypeError, ValueError) as exc:
        result = {"error": f"bad arguments for {name}: {exc}"}
    return json.dumps(result, ensure_ascii=False)


def main(*, base_url: str, model: str, api_key: str) -> int:
    """Run the conversation; 0 when the model answered after using the tools."""
    client = OpenAI(base_url=base_url, api_key=api_key)
    request = {**seed_request(), "model": model}
    started = time.perf_counter()
    first = client.responses.create(**request)
    first_seconds = time.perf_counter() - started
    calls = [item for item in first.output if item.type == "function_call"]
    print(f"turn 1: {len(calls)} tool call(s) from {first.model} in {first_seconds:.2f} s")
    if not calls:
        print(first.output_text)
        return 1
    tools_started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        outputs = list(pool.map(lambda call: run_tool(call.name, call.arguments), calls))
    tools_seconds = time.perf_counter() - tools_started
    for call, output in zip(calls, outputs, strict=True):
        print(f"  {call.name}({call.arguments}) -> {output}")
    print(f"tools ran in parallel in {tools_seconds * 1000:.1f} ms")
    second_started = time.perf_counter()
    final = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": output}
            for call, output in zip(calls, outputs, strict=True)
        ],
        tools=request["tools"],
    )
    second_seconds = time.perf_counter() - second_started
    print(f"turn 2: answer from {final.model} in {second_seconds:.2f} s\n")
    print(final.output_text)
    usage = final.usage
    tokens = f" ({usage.input_tokens} in / {usage.output_tokens} out)" if usage else ""
    print(f"\ntotal {time.perf_counter() - started:.2f} s{tokens}")
    return 0 if final.output_text else 1
