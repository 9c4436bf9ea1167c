"""The local provider against the real Qwen2.5-Coder-0.5B and a real llama-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import aiohttp
import jsonschema
import pytest

from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.local import LocalProvider, LocalSetupError
from respgate.providers.local.model import PRESETS

from .conftest import collect, seed_call, seed_request, user_message

pytestmark = pytest.mark.local_model

SEED_CALLS = [
    ("current_time", {}),
    ("system_info", {}),
    ("math_calculator", {"a": 123.5, "b": 456.7, "operation": "add"}),
    ("random_generator", {"min": 1, "max": 100, "count": 3}),
]


def _history_with_outputs(answer_calls: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    outputs = {
        "current_time": "2026-11-25 17:40:00",
        "system_info": '{"os": "Linux", "python": "3.11.7", "memory_total_gb": 23.4}',
        "math_calculator": '{"result": 580.2}',
        "random_generator": '{"numbers": [17, 42, 88]}',
    }
    items: list[dict[str, Any]] = [user_message(seed_request()["input"][0]["content"])]
    for index, call in sorted(answer_calls.items()):
        items.append(
            {
                "type": "function_call",
                "call_id": f"call_{index}",
                "name": call["name"],
                "arguments": call["arguments"],
            }
        )
    for index, call in sorted(answer_calls.items()):
        items.append({"type": "function_call_output", "call_id": f"call_{index}", "output": outputs[call["name"]]})
    return items


async def test_seed_request_gives_exactly_the_four_calls(local_provider: LocalProvider) -> None:
    answer = await collect(local_provider.stream(seed_call()))

    assert answer.call_list() == SEED_CALLS
    assert answer.text == ""
    assert sorted(answer.ended) == [0, 1, 2, 3]
    for call in answer.calls.values():
        assert call["arguments"] == json.dumps(json.loads(call["arguments"]), separators=(",", ":"))
    assert answer.finish is not None and answer.finish.reason == "stop"
    assert answer.usage is not None and answer.usage.input_tokens > 400 and answer.usage.output_tokens > 0


async def test_second_turn_with_tool_outputs_answers_in_text(local_provider: LocalProvider) -> None:
    first = await collect(local_provider.stream(seed_call()))

    answer = await collect(local_provider.stream(seed_call(items=_history_with_outputs(first.calls))))

    assert answer.calls == {}
    assert "580.2" in answer.text


async def test_question_needing_no_tool_gets_prose(local_provider: LocalProvider) -> None:
    call = seed_call(items=[user_message("What is the capital of France?")])

    answer = await collect(local_provider.stream(call))

    assert answer.calls == {}
    assert "Paris" in answer.text


async def test_tool_choice_none_never_calls(local_provider: LocalProvider) -> None:
    answer = await collect(local_provider.stream(seed_call(tool_choice="none", max_output_tokens=48)))

    assert answer.calls == {}
    assert answer.text.strip()


async def test_named_tool_gives_exactly_that_call(local_provider: LocalProvider) -> None:
    call = seed_call(tool_choice="required", allowed_tools=frozenset({"math_calculator"}))

    answer = await collect(local_provider.stream(call))

    assert answer.call_list() == [("math_calculator", {"a": 123.5, "b": 456.7, "operation": "add"})]


async def test_parallel_tool_calls_false_gives_one_call(local_provider: LocalProvider) -> None:
    answer = await collect(local_provider.stream(seed_call(parallel_tool_calls=False)))

    assert [name for name, _ in answer.call_list()] == ["current_time"]


async def test_json_schema_format_gives_valid_json(local_provider: LocalProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population_millions": {"type": "number"}},
        "required": ["city", "population_millions"],
        "additionalProperties": False,
    }
    call = seed_call(
        items=[user_message("Give the capital of France and its population as JSON.")],
        tools=[],
        tool_choice="none",
        text_format={"type": "json_schema", "name": "city", "schema": schema, "strict": True},
    )

    answer = await collect(local_provider.stream(call))

    jsonschema.validate(json.loads(answer.text), schema)


async def test_max_output_tokens_finishes_with_length(local_provider: LocalProvider) -> None:
    call = seed_call(items=[user_message("Write a long story about a dragon.")], tools=[], max_output_tokens=5)

    answer = await collect(local_provider.stream(call))

    assert answer.finish is not None and answer.finish.reason == "length"
    assert answer.usage is not None and answer.usage.output_tokens == 5


async def test_prompt_over_the_window_is_refused(local_provider: LocalProvider) -> None:
    huge = "lorem ipsum dolor sit amet " * (local_provider.context_window // 2)
    call = seed_call(items=[user_message(huge), user_message("Say hello.")], tools=[])

    with pytest.raises(InvalidRequest) as raised:
        await collect(local_provider.stream(call))

    assert raised.value.code == "context_length_exceeded"
    assert raised.value.param == "input"


async def test_truncation_auto_drops_the_oldest_items(local_provider: LocalProvider) -> None:
    huge = "lorem ipsum dolor sit amet " * (local_provider.context_window // 2)
    call = seed_call(
        items=[user_message(huge), user_message("Say hello.")], tools=[], truncation="auto", max_output_tokens=8
    )

    answer = await collect(local_provider.stream(call))

    assert answer.text
    assert answer.usage is not None and answer.usage.input_tokens < 100


async def test_closing_the_stream_stops_generation(local_provider: LocalProvider) -> None:
    call = seed_call(items=[user_message("Count from 1 to 500, one number per line.")], tools=[])
    stream = local_provider.stream(call)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]

    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(local_provider.base_url + "/slots") as response:
                slots = await response.json()
            if not any(slot["is_processing"] for slot in slots):
                break
            await asyncio.sleep(0.1)
    assert not any(slot["is_processing"] for slot in slots)


async def test_killed_engine_is_restarted_for_the_next_request(local_provider: LocalProvider) -> None:
    server = local_provider.server
    spawns, pid = server.spawns, server.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    answer = await collect(local_provider.stream(seed_call(items=[user_message("Say hi.")], tools=[])))

    assert answer.text
    assert server.spawns == spawns + 1 and server.pid != pid


async def test_model_file_with_wrong_hash_is_refused(local_settings_factory: Any, tmp_path: Any) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 1024)
    provider = LocalProvider(
        settings=local_settings_factory(model_path=model, model_sha256=PRESETS["qwen2.5-coder-0.5b"].sha256)
    )

    with pytest.raises(LocalSetupError, match="sha256"):
        await provider.start()


async def test_corrupt_model_file_fails_start_with_the_engine_log(
    local_settings_factory: Any, tmp_path: Any
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + os.urandom(4096))
    provider = LocalProvider(settings=local_settings_factory(model_path=model))

    with pytest.raises(UpstreamError, match="llama-server exited"):
        await provider.start()
    await provider.aclose()
