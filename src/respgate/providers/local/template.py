"""The model's own chat template, rendered by respgate from normalised Responses items."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from respgate.protocol.errors import InvalidRequest, ServerError
from respgate.providers.base import FunctionSpec, ModelCall

_TEXT_PARTS = {"input_text", "output_text", "text"}


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    # Hugging Face's `tojson`, not jinja's HTML-safe one: tools must reach the model as plain JSON
    # (non-ASCII kept, `<` not escaped), exactly as the model saw them in training.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


class ChatTemplate:
    """A compiled chat template (jinja2, sandboxed) with the model's special tokens."""

    def __init__(self, *, source: str, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise ServerError(f"the model's chat template does not compile: {exc}") from exc
        self._bos = bos_token
        self._eos = eos_token

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        try:
            return self._template.render(
                messages=messages,
                tools=tools or None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos,
                eos_token=self._eos,
            )
        except jinja2.TemplateError as exc:
            raise InvalidRequest(f"the conversation cannot be rendered for this model: {exc}") from exc


def template_tools(tools: list[FunctionSpec]) -> list[dict[str, Any]]:
    """Tools in the shape chat templates expect (`{"type": "function", "function": {...}}`)."""
    rendered = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.parameters
        rendered.append({"type": "function", "function": function})
    return rendered


def _part_text(part: dict[str, Any], *, model: str) -> str:
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return str(part.get("text", ""))
    if kind == "refusal":
        return str(part.get("refusal", ""))
    raise InvalidRequest(
        f"model {model!r} reads text only; content of type {kind!r} is not supported",
        param="input",
        code="unsupported_content",
    )


def _content_text(content: Any, *, model: str) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(_part_text(part, model=model) for part in content or [])


def _arguments(raw: str) -> Any:
    # Templates print arguments with `tojson`, so they expect the decoded object.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def chat_messages(call: ModelCall) -> list[dict[str, Any]]:
    """`call.instructions` and `call.items` as chat messages (system/user/assistant/tool)."""
    model = call.model
    messages: list[dict[str, Any]] = []
    leading_system: list[str] = [call.instructions] if call.instructions else []
    for item in call.items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            text = _content_text(item.get("content"), model=model)
            if role in ("system", "developer"):
                if not messages:
                    leading_system.append(text)
                else:
                    messages.append({"role": "system", "content": text})
            elif role == "assistant":
                messages.append({"role": "assistant", "content": text})
            else:
                messages.append({"role": "user", "content": text})
        elif kind == "function_call":
            tool_call = {
                "type": "function",
                "id": item.get("call_id"),
                "function": {"name": item.get("name"), "arguments": _arguments(item.get("arguments", ""))},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(tool_call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [tool_call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": _content_text(output, model=model),
                }
            )
        # Reasoning and other item types carry nothing this model can read.
    if leading_system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(leading_system)})
    return messages


def facts_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The last exchange restated as one user turn: the question, then tool results as facts.

    Small models shown their own `<tool_call>`/`<tool_response>` history tend to repeat the calls;
    asked plainly to answer a question from listed facts, they answer. None when the last user
    message is not followed by tool results.
    """
    last_user = max((i for i, message in enumerate(messages) if message["role"] == "user"), default=None)
    if last_user is None:
        return None
    calls: dict[Any, str] = {}
    facts: list[str] = []
    for message in messages[last_user + 1 :]:
        for tool_call in message.get("tool_calls", []):
            function = tool_call["function"]
            arguments = function["arguments"]
            shown = "" if arguments in ({}, "", None) else " " + _tojson(arguments)
            calls[tool_call.get("id")] = f"{function['name']}{shown}"
        if message["role"] == "tool":
            label = calls.get(message.get("tool_call_id"), "tool")
            facts.append(f"{label}: {message['content']}")
    if not facts:
        return None
    question = messages[last_user]["content"]
    restated = f"Question: {question}\n\nFacts:\n" + "\n".join(facts) + "\n\nAnswer the question with the facts."
    return [*messages[:last_user], {"role": "user", "content": restated}]
