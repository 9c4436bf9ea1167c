"""Rendering Responses items with the model's own chat template (the Qwen2.5 template file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from respgate.protocol.errors import InvalidRequest
from respgate.providers.base import FunctionSpec, ModelCall
from respgate.providers.local.template import ChatTemplate, chat_messages, facts_messages, template_tools

TEMPLATE = ChatTemplate(source=(Path(__file__).parent / "data" / "qwen2.5-coder-chat-template.jinja").read_text())
TOOL = FunctionSpec(
    name="math_calculator",
    description="执行基本数学运算 <b>",
    parameters={"type": "object", "properties": {"a": {"type": "number"}}},
    strict=False,
)


def _call(items: list[dict[str, object]], **fields: object) -> ModelCall:
    return ModelCall(model="m", upstream_model="m", items=items, **fields)  # type: ignore[arg-type]


def _text(role: str, text: str, kind: str = "input_text") -> dict[str, object]:
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


HISTORY = [
    _text("developer", "Be brief."),
    _text("user", "Add 1 and 2."),
    _text("assistant", "Calling.", "output_text"),
    {"type": "function_call", "call_id": "c1", "name": "math_calculator", "arguments": '{"a": 1}'},
    {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "3"}]},
    {"type": "reasoning", "summary": []},
]


def test_history_becomes_chat_messages() -> None:
    messages = chat_messages(_call(HISTORY, instructions="You are a calculator."))

    assert messages == [
        {"role": "system", "content": "You are a calculator.\n\nBe brief."},
        {"role": "user", "content": "Add 1 and 2."},
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {"type": "function", "id": "c1", "function": {"name": "math_calculator", "arguments": {"a": 1}}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]


def test_rendering_with_tools_matches_the_qwen_layout() -> None:
    messages = chat_messages(_call(HISTORY, instructions="You are a calculator."))

    prompt = TEMPLATE.render(messages, tools=template_tools([TOOL]))

    assert prompt.startswith("<|im_start|>system\nYou are a calculator.\n\nBe brief.\n\n# Tools\n")
    # Tools are plain JSON: non-ASCII and `<` kept as they are.
    assert (
        '{"type": "function", "function": {"name": "math_calculator", "description": "执行基本数学运算 <b>"'
        in prompt
    )
    assert (
        '<|im_start|>assistant\nCalling.\n<tool_call>\n{"name": "math_calculator", "arguments": {"a": 1}}\n'
        "</tool_call><|im_end|>\n"
    ) in prompt
    assert "<|im_start|>user\n<tool_response>\n3\n</tool_response><|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_rendering_without_tools_uses_the_default_system_prompt() -> None:
    prompt = TEMPLATE.render(chat_messages(_call([_text("user", "hi")])))

    assert prompt == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_images_are_refused_clearly() -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "x"}]}

    with pytest.raises(InvalidRequest) as raised:
        chat_messages(_call([item]))

    assert raised.value.param == "input"


def test_tool_results_are_restated_as_facts() -> None:
    messages = chat_messages(_call(HISTORY))

    restated = facts_messages(messages)

    assert restated is not None
    assert restated[-1] == {
        "role": "user",
        "content": 'Question: Add 1 and 2.\n\nFacts:\nmath_calculator {"a": 1}: 3\n\nAnswer the question with the facts.',
    }
    assert facts_messages(chat_messages(_call([_text("user", "hi")]))) is None
