"""Any OpenAI-compatible `POST /chat/completions` server (OpenAI, vLLM, SGLang, Ollama, DeepSeek…).

Reasoning items have no place in a chat request: they are dropped, unless `send_reasoning_content`
is set, in which case their text rides on the next assistant message as `reasoning_content`
(what DeepSeek-style servers expect back during a tool-call turn). Encrypted reasoning is never sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from respgate.config import ModelEntry
from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.base import (
    Delta,
    Finish,
    FinishReason,
    ModelCall,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from respgate.providers.upstream import MalformedUpstream, UpstreamProvider, bearer
from respgate.providers.upstream_settings import UpstreamSettings, check_capabilities, load_settings, merge_params


class ChatCompletionsSettings(UpstreamSettings):
    base_url: str = "https://api.openai.com/v1"
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    send_reasoning_content: bool = False
    stream_usage: bool = Field(default=True, description="send stream_options.include_usage")


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(
        str(part.get("text", "")) for part in parts if part.get("type") in ("input_text", "output_text")
    )


def _reasoning_text(item: dict[str, Any]) -> str:
    content = [part.get("text", "") for part in item.get("content") or [] if isinstance(part, dict)]
    if any(content):
        return "".join(content)
    return "\n\n".join(part.get("text", "") for part in item.get("summary") or [] if isinstance(part, dict))


def _user_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "input_text":
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        if not part.get("image_url"):
            raise InvalidRequest("Image inputs by file_id are not supported for this model; send image_url.")
        image: dict[str, Any] = {"url": part["image_url"]}
        # Chat servers know only low/high/auto; "original" has no equivalent and auto is the default.
        if part.get("detail") in ("low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if part.get("file_url"):
            raise InvalidRequest("File inputs by file_url are not supported for this model; send file_data.")
        file = {key: part[key] for key in ("file_id", "file_data", "filename") if part.get(key)}
        return {"type": "file", "file": file}
    raise InvalidRequest(f"Content parts of type {kind} are not supported for this model.")


def _user_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    rendered = [_user_part(part) for part in parts]
    # Many servers accept only a string when the content is plain text.
    if all(part["type"] == "text" for part in rendered):
        return "".join(part["text"] for part in rendered)
    return rendered


class _Messages:
    """Builds the `messages` array, merging calls into the assistant message they belong to."""

    def __init__(self, *, send_reasoning: bool) -> None:
        self.messages: list[dict[str, Any]] = []
        self._send_reasoning = send_reasoning
        self._pending_reasoning: list[str] = []

    def _assistant(self) -> dict[str, Any]:
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            return last
        message: dict[str, Any] = {"role": "assistant", "content": None}
        self._append(message)
        return message

    def _append(self, message: dict[str, Any]) -> None:
        if message["role"] == "assistant" and self._pending_reasoning:
            message["reasoning_content"] = "\n\n".join(self._pending_reasoning)
            self._pending_reasoning = []
        self.messages.append(message)

    def add(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "message":
            role, parts = item["role"], item["content"]
            if role in ("system", "developer"):
                self._append({"role": "system", "content": _user_content(parts)})
            elif role == "user":
                self._append({"role": "user", "content": _user_content(parts)})
            else:
                text = "".join(
                    str(part.get("text") if part.get("type") == "output_text" else part.get("refusal", ""))
                    for part in parts
                )
                self._append({"role": "assistant", "content": text})
        elif kind == "function_call":
            message = self._assistant()
            message.setdefault("tool_calls", []).append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
        elif kind == "function_call_output":
            output = item["output"]
            content = output if isinstance(output, str) else _user_content(output)
            self._append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
        elif kind == "reasoning":
            if self._send_reasoning and (text := _reasoning_text(item)):
                self._pending_reasoning.append(text)
        else:
            raise InvalidRequest(f"Input items of type {kind} are not supported for this model.", param="input")


def _response_format(text_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = text_format.get("type")
    if kind == "json_schema":
        # An absent description is left out: strict servers reject `null` where the API wants a string.
        schema = {
            key: text_format[key]
            for key in ("name", "description", "schema", "strict")
            if text_format.get(key) is not None
        }
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


class ChatCompletionsProvider(UpstreamProvider):
    """Translates a `ModelCall` into a streamed chat completion and its chunks into neutral deltas."""

    def __init__(self, entry: ModelEntry) -> None:
        self._settings = load_settings(entry, ChatCompletionsSettings)
        self._model = entry.name
        super().__init__(entry=entry, settings=self._settings, auth=bearer)

    def request_body(self, call: ModelCall) -> dict[str, Any]:
        """The exact JSON sent upstream for `call`."""
        settings = self._settings
        check_capabilities(call, settings.capabilities)
        messages = _Messages(send_reasoning=settings.send_reasoning_content)
        if call.instructions:
            messages.messages.append({"role": "system", "content": call.instructions})
        for item in call.items:
            messages.add(item)
        body: dict[str, Any] = {"model": call.upstream_model, "messages": messages.messages, "stream": True}
        if settings.stream_usage:
            body["stream_options"] = {"include_usage": True}
        tools = call.tools if call.tool_choice == "none" else call.callable_tools()
        if tools:
            body["tools"] = [
                self._tool(tool.name, tool.description, tool.parameters, tool.strict) for tool in tools
            ]
            if call.tool_choice == "required" and len(tools) == 1 and call.allowed_tools is not None:
                body["tool_choice"] = {"type": "function", "function": {"name": tools[0].name}}
            else:
                body["tool_choice"] = call.tool_choice
            if settings.capabilities.parallel_tool_calls:
                body["parallel_tool_calls"] = call.parallel_tool_calls
        if call.text_format and (response_format := _response_format(call.text_format)):
            body["response_format"] = response_format
        if call.max_output_tokens is not None:
            body[settings.max_tokens_field] = call.max_output_tokens
        if call.reasoning_effort is not None:
            body["reasoning_effort"] = call.reasoning_effort
        for key in ("temperature", "top_p", "user"):
            if (value := getattr(call, key)) is not None:
                body[key] = value
        return merge_params(settings.params, body)

    def _tool(
        self, name: str, description: str | None, parameters: dict[str, Any], strict: bool
    ) -> dict[str, Any]:
        function: dict[str, Any] = {"name": name, "parameters": parameters}
        if description:
            function["description"] = description
        # Without upstream enforcement the engine still validates strict arguments; the flag is omitted
        # because such servers often reject the unknown key.
        if self._settings.capabilities.strict:
            function["strict"] = strict
        return {"type": "function", "function": function}

    def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        return self._relay("/chat/completions", self.request_body(call), _ChunkReader(), last="a finish_reason")


class _ChunkReader:
    """Chat completion chunks → neutral deltas; keeps what is only known at the end (usage, finish).

    The chunk with `finish_reason` is the finish; the usage chunk and `[DONE]` that follow are a tail
    (the stream ends at `[DONE]` or when the body does).
    """

    finished = False

    def __init__(self) -> None:
        self._finish: str | None = None
        self._usage: Usage | None = None
        # upstream tool-call index → (its id, our dense index); some servers reuse index 0 with new ids.
        self._calls: dict[int, tuple[str | None, int]] = {}
        self._next_call = 0

    def read(self, chunk: dict[str, Any]) -> list[Delta]:
        if isinstance(error := chunk.get("error"), dict):
            raise UpstreamError(f"The upstream stream failed: {error.get('message') or 'unknown error'}")
        if isinstance(usage := chunk.get("usage"), dict):
            self._usage = _usage(usage)
        deltas: list[Delta] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                deltas.append(ReasoningDelta(text=reasoning, kind="content"))
            if isinstance(content := delta.get("content"), str) and content:
                deltas.append(TextDelta(content))
            if isinstance(refusal := delta.get("refusal"), str) and refusal:
                deltas.append(RefusalDelta(refusal))
            for call in delta.get("tool_calls") or []:
                deltas.append(self._tool_call(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return deltas

    def _tool_call(self, call: dict[str, Any]) -> ToolCallDelta:
        upstream_index = call.get("index", len(self._calls))
        call_id = call.get("id")
        function = call.get("function") or {}
        known = self._calls.get(upstream_index)
        first = known is None or (call_id is not None and known[0] is not None and call_id != known[0])
        if first:
            known = (call_id, self._next_call)
            self._calls[upstream_index] = known
            self._next_call += 1
        assert known is not None
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            raise MalformedUpstream("tool call arguments are not a string")
        name = function.get("name") if first else None
        if first and not name:
            raise MalformedUpstream("the first chunk of a tool call has no function name")
        return ToolCallDelta(known[1], name=name, arguments=arguments)

    @property
    def finishing(self) -> bool:
        return self._finish is not None

    def end(self) -> list[Delta]:
        reason: FinishReason = "stop"
        if self._finish in ("length", "content_filter"):
            reason = "length" if self._finish == "length" else "content_filter"
        ending: list[Delta] = [self._usage] if self._usage else []
        return [*ending, Finish(reason)]


def _usage(usage: dict[str, Any]) -> Usage:
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(prompt.get("cached_tokens") or 0),
        reasoning_tokens=int(completion.get("reasoning_tokens") or 0),
    )
