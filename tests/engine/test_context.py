"""Input normalisation, item references, and OpenAI's pairing and duplicate checks (reference §3, §8)."""

from __future__ import annotations

from typing import Any

import pytest

from respgate.engine.context import assemble, for_model, normalize_input
from respgate.protocol.errors import InvalidRequest
from respgate.protocol.request import CreateResponse


def _input(raw: Any) -> list[dict[str, Any]]:
    return normalize_input(CreateResponse.model_validate({"model": "m", "input": raw}).input)


def test_string_input_is_a_user_message_with_an_id() -> None:
    [item] = _input("hello")
    assert item["id"].startswith("msg_") and item["type"] == "message" and item["role"] == "user"
    assert item["content"] == [{"type": "input_text", "text": "hello"}]


def test_messages_without_type_and_assistant_history_without_ids() -> None:
    items = _input(
        [
            {"role": "developer", "content": "be nice"},
            {"role": "assistant", "content": "earlier answer"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA"}],
            },
        ]
    )
    assert [item["role"] for item in items] == ["developer", "assistant", "user"]
    assert items[1]["content"] == [{"type": "output_text", "text": "earlier answer", "annotations": []}]
    assert items[2]["content"][0]["detail"] == "auto"
    assert len({item["id"] for item in items}) == 3


def test_assistant_content_must_be_output_parts() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _input([{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}])
    assert (
        caught.value.message == "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'."
    )
    assert caught.value.param == "input[0].content[0]"


def test_ids_with_the_wrong_prefix_are_rejected() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _input([{"type": "reasoning", "id": "msg_1", "summary": []}])
    assert caught.value.code == "invalid_id_prefix"
    assert caught.value.message == "Invalid 'input[0].id': 'msg_1'. Expected an ID that begins with 'rs'."


def test_function_call_output_accepts_parts() -> None:
    items = _input(
        [
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": [{"type": "input_text", "text": "ok"}],
            },
        ]
    )
    assert items[1]["output"] == [{"type": "input_text", "text": "ok"}]
    assert assemble([], items)[1]["call_id"] == "call_1"


def test_item_references_resolve_against_the_history() -> None:
    history = _input([{"type": "message", "id": "msg_old", "role": "user", "content": "before"}])
    context = assemble(history, [{"type": "item_reference", "id": "msg_old"}])
    assert context[-1]["id"] == "msg_old"
    with pytest.raises(InvalidRequest, match="msg_gone"):
        assemble(history, [{"type": "item_reference", "id": "msg_gone"}])


CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "done"}


@pytest.mark.parametrize(
    ("history", "new", "message"),
    [
        ([], [CALL], "No tool output found for function call call_1."),
        ([CALL], [], "No tool output found for function call call_1."),
        ([], [OUTPUT], "No tool call found for function call output with call_id call_1."),
        ([], [OUTPUT, CALL], "No tool call found for function call output with call_id call_1."),
        ([CALL], [CALL, OUTPUT], "Duplicate item found with id fc_1."),
        ([], [CALL, CALL, OUTPUT], "Duplicate item found with id fc_1."),
    ],
)
def test_pairing_errors(history: list[dict[str, Any]], new: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        assemble(history, new)
    assert caught.value.message == message
    assert caught.value.param == "input" and caught.value.code is None and caught.value.status_code == 400


def test_paired_calls_pass_and_providers_do_not_see_status() -> None:
    context = assemble([{**CALL, "status": "completed"}], [OUTPUT])
    assert [item["type"] for item in context] == ["function_call", "function_call_output"]
    assert all("status" not in item for item in for_model(context))
