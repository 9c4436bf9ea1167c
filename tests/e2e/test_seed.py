"""The seed request, verbatim, against `gpt-4.1` scripted with the seed's four calls; and its round trips."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.events import check_response
from support.harness import KEY_A, scripted, stream_events

pytestmark = pytest.mark.asyncio

DATA = Path(__file__).resolve().parent.parent / "data"
SEED_BYTES = (DATA / "seed_request.json").read_bytes()
SEED = json.loads(SEED_BYTES)
EXAMPLE = json.loads((DATA / "seed_response.json").read_text(encoding="utf-8"))

CALLS = [
    ("current_time", {}),
    ("system_info", {}),
    ("math_calculator", {"operation": "add", "a": 123.5, "b": 456.7}),
    ("random_generator", {"min": 1, "max": 100, "count": 3}),
]
FINAL_TEXT = "现在是中午, 系统是 Linux, 123.5 + 456.7 = 580.2, 随机数是 7、42、99。"
GPT41 = scripted(
    "gpt-4.1",
    {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in CALLS]},
    {"text": FINAL_TEXT},
)
OUTPUTS = {
    "current_time": "2025-08-25 12:00:00",
    "system_info": '{"os":"Linux","memory":"16 GiB"}',
    "math_calculator": "580.2",
    "random_generator": "[7, 42, 99]",
}

# Keys we send beyond the seed's example: both are in OpenAI's current responses (reference §5) and
# in the SDK's `Response` type; the example predates them.
EXTRA_TOP_LEVEL = {"completed_at", "top_logprobs"}
# Fields whose value is the request's echo or OpenAI's default, and so must equal the example's.
SAME_AS_EXAMPLE = [
    "object",
    "status",
    "background",
    "content_filters",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "tool_choice",
    "top_p",
    "truncation",
    "user",
]


def _match_example(response: dict[str, Any]) -> None:
    """Field by field against the seed's example response; values that must differ are checked by shape."""
    assert set(EXAMPLE) <= set(response), f"missing: {set(EXAMPLE) - set(response)}"
    assert set(response) - set(EXAMPLE) == EXTRA_TOP_LEVEL
    for key in SAME_AS_EXAMPLE:
        assert response[key] == EXAMPLE[key], key
    assert response["id"].startswith("resp_") and len(response["id"]) > len("resp_") + 20
    assert isinstance(response["created_at"], int) and abs(response["created_at"] - time.time()) < 3600
    assert isinstance(response["completed_at"], int) and response["completed_at"] >= response["created_at"]
    assert response["top_logprobs"] == 0
    # `model` echoes the configured name (OpenAI echoes its resolved snapshot, e.g. "gpt-4.1-data").
    assert response["model"] == "gpt-4.1" and EXAMPLE["model"].startswith(response["model"])
    assert response["metadata"] == SEED["metadata"]  # echo of the request (the example's request had none)
    # text: the same format; `verbosity` is the one key OpenAI added since.
    assert response["text"]["format"] == EXAMPLE["text"]["format"]
    assert (
        set(response["text"]) - set(EXAMPLE["text"]) == {"verbosity"} and response["text"]["verbosity"] == "medium"
    )

    example_call = EXAMPLE["output"][0]
    assert len(response["output"]) == 4
    call_ids = set()
    for item, (name, arguments) in zip(response["output"], CALLS, strict=True):
        assert set(item) == set(example_call)
        assert item["type"] == "function_call" and item["status"] == "completed" and item["name"] == name
        assert item["id"].startswith("fc_") and item["call_id"].startswith("call_")
        assert len(item["call_id"]) == len(example_call["call_id"])
        assert json.loads(item["arguments"]) == arguments
        call_ids.add(item["call_id"])
    assert len(call_ids) == 4

    example_tool = EXAMPLE["tools"][0]
    assert [tool["name"] for tool in response["tools"]] == [tool["name"] for tool in SEED["tools"]]
    for echoed, sent in zip(response["tools"], SEED["tools"], strict=True):
        assert set(echoed) == set(example_tool)
        assert echoed["parameters"] == sent["parameters"] and echoed["description"] == sent["description"]
    # strict normalisation: omitted strict becomes true where every property is required (as in the
    # example, whose tool lists all its properties in `required`), false otherwise.
    assert [tool["strict"] for tool in response["tools"]] == [False, True, True, True]

    usage, example_usage = response["usage"], EXAMPLE["usage"]
    assert set(example_usage) == set(usage)
    assert set(example_usage["input_tokens_details"]) <= set(usage["input_tokens_details"])
    assert set(example_usage["output_tokens_details"]) == set(usage["output_tokens_details"])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0


async def test_seed_verbatim_as_json(make_app) -> None:
    app = await make_app([GPT41])
    raw = await app.http.post(
        "/v1/responses",
        content=SEED_BYTES,
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {KEY_A}",
        },
    )
    assert raw.status_code == 200, raw.text
    assert raw.headers["content-type"].startswith("application/json")
    body = raw.json()
    check_response(body)
    _match_example(body)
    stored = await app.client().responses.retrieve(body["id"])
    assert stored.to_dict(mode="json") == body or stored.id == body["id"]
    assert (
        await app.http.get(f"/v1/responses/{body['id']}", headers={"Authorization": f"Bearer {KEY_A}"})
    ).json() == body


async def test_seed_through_the_sdk(make_app) -> None:
    app = await make_app([GPT41])
    response = await app.client().responses.create(**SEED)
    assert [call.name for call in response.output] == [name for name, _ in CALLS]
    assert app.recorder.exchanges[-1].status == 200
    _match_example(json.loads(app.recorder.exchanges[-1].body))


async def test_seed_as_a_stream(make_app) -> None:
    app = await make_app([GPT41])
    events, final = await stream_events(app.client(), **SEED)
    _match_example(final)
    added = [event for event in events if event["type"] == "response.output_item.added"]
    assert [event["item"]["name"] for event in added] == [name for name, _ in CALLS]
    assert [event["output_index"] for event in added] == [0, 1, 2, 3]
    assert not any(event["type"].startswith("response.content_part") for event in events)


async def test_seed_stream_helper(make_app) -> None:
    app = await make_app([GPT41])
    async with app.client().responses.stream(**SEED) as stream:
        final = await stream.get_final_response()
    _, wire = app.last_stream()
    _match_example(wire)
    assert final.id == wire["id"]
    assert [(call.type, call.name) for call in final.output] == [("function_call", name) for name, _ in CALLS]
    assert [json.loads(call.arguments) for call in final.output] == [arguments for _, arguments in CALLS]


def _outputs(response_output: list[Any]) -> list[dict[str, Any]]:
    return [
        {"type": "function_call_output", "call_id": call.call_id, "output": OUTPUTS[call.name]}
        for call in response_output
    ]


async def test_round_trip_with_previous_response_id(make_app) -> None:
    app = await make_app([GPT41])
    client = app.client()
    first = await client.responses.create(**SEED)
    second = await client.responses.create(
        model="gpt-4.1", previous_response_id=first.id, input=_outputs(first.output), tools=SEED["tools"]
    )
    check_response(json.loads(app.recorder.exchanges[-1].body))
    assert second.output_text == FINAL_TEXT
    assert second.previous_response_id == first.id
    # Instructions are not inherited; the chain is.
    _, third = await stream_events(
        client, model="gpt-4.1", previous_response_id=first.id, input=_outputs(first.output), tools=SEED["tools"]
    )
    assert third["output"][0]["content"][0]["text"] == FINAL_TEXT


async def test_round_trip_with_the_full_history(make_app) -> None:
    app = await make_app([GPT41])
    client = app.client()
    first = await client.responses.create(**SEED)
    history = [
        *SEED["input"],
        *[item.to_dict() for item in first.output],
        *_outputs(first.output),
    ]
    second = await client.responses.create(model="gpt-4.1", input=history, tools=SEED["tools"], store=False)
    assert second.output_text == FINAL_TEXT
    assert second.previous_response_id is None and second.store is False
    async with client.responses.stream(model="gpt-4.1", input=history, tools=SEED["tools"]) as stream:
        final = await stream.get_final_response()
    app.last_stream()
    assert final.output_text == FINAL_TEXT
