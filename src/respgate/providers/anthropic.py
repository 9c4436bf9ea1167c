"""Anthropic's Messages API (`POST /v1/messages`), streamed.

System and developer messages become the top-level `system` (Anthropic has no such role inside
`messages`). Thinking blocks come back as reasoning whose `encrypted_content` is the block's
signature, tagged so that only this provider replays it; other reasoning items are dropped.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import Field

from respgate.config import ModelEntry
from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.base import (
    Delta,
    Finish,
    FinishReason,
    ModelCall,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)
from respgate.providers.upstream import UpstreamProvider, tag_reasoning, untag_reasoning
from respgate.providers.upstream_settings import (
    Capabilities,
    UpstreamSettings,
    check_capabilities,
    load_settings,
    merge_params,
)

_PROVIDER = "anthropic"
_REDACTED = "redacted:"
_TOOL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class AnthropicCapabilities(Capabilities):
    # Structured outputs and thinking exist only on some Claude models: opt in per deployment.
    strict: bool = False
    json_schema: bool = False
    reasoning: bool = False


class AnthropicSettings(UpstreamSettings):
    base_url: str = "https://api.anthropic.com"
    capabilities: AnthropicCapabilities = Field(default_factory=AnthropicCapabilities)
    anthropic_version: str = "2023-06-01"
    max_tokens: int = Field(default=4096, ge=1)
    thinking_budgets: dict[str, int] = Field(
        default_factory=lambda: {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
    )


def _tool_id(call_id: str) -> str:
    # Anthropic accepts only [a-zA-Z0-9_-] in tool ids; the same mapping is applied to results.
    return _TOOL_ID_UNSAFE.sub("_", call_id)


def _source(url: str) -> dict[str, Any]:
    if match := _DATA_URL.match(url):
        return {"type": "base64", "media_type": match["type"], "data": match["data"]}
    return {"type": "url", "url": url}


def _blocks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            if part.get("text"):  # Anthropic rejects empty text blocks.
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            if part.get("refusal"):
                blocks.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image":
            if not part.get("image_url"):
                raise InvalidRequest("Image inputs by file_id are not supported for this model; send image_url.")
            blocks.append({"type": "image", "source": _source(part["image_url"])})
        elif kind == "input_file":
            url = part.get("file_data") or part.get("file_url")
            if not url:
                raise InvalidRequest("File inputs by file_id are not supported for this model.")
            blocks.append({"type": "document", "source": _source(url)})
        else:
            raise InvalidRequest(f"Content parts of type {kind} are not supported for this model.")
    return blocks


def _reasoning_block(item: dict[str, Any]) -> dict[str, Any] | None:
    provider, blob = untag_reasoning(item.get("encrypted_content") or "")
    if provider != _PROVIDER:
        return None
    if blob.startswith(_REDACTED):
        return {"type": "redacted_thinking", "data": blob.removeprefix(_REDACTED)}
    parts = item.get("content") or item.get("summary") or []
    return {
        "type": "thinking",
        "thinking": "".join(part.get("text", "") for part in parts),
        "signature": blob,
    }


class _Turns:
    """Alternating user/assistant turns: consecutive blocks of one role share one message."""

    def __init__(self) -> None:
        self.system: list[str] = []
        self.messages: list[dict[str, Any]] = []

    def _push(self, role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].extend(blocks)
        else:
            self.messages.append({"role": role, "content": blocks})

    def add(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "message":
            if item["role"] in ("system", "developer"):
                text = "".join(
                    part.get("text", "") for part in item["content"] if part.get("type") == "input_text"
                )
                if text:
                    self.system.append(text)
            else:
                self._push(item["role"], _blocks(item["content"]))
        elif kind == "function_call":
            try:
                arguments = orjson.loads(item["arguments"] or "{}")
            except orjson.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                raise InvalidRequest(
                    f"The arguments of function call {item['call_id']} are not a JSON object.", param="input"
                )
            block = {
                "type": "tool_use",
                "id": _tool_id(item["call_id"]),
                "name": item["name"],
                "input": arguments,
            }
            self._push("assistant", [block])
        elif kind == "function_call_output":
            output = item["output"]
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(item["call_id"])}
            content = output if isinstance(output, str) else _blocks(output)
            if content:
                result["content"] = content
            self._push("user", [result])
        elif kind == "reasoning":
            if (thinking := _reasoning_block(item)) is not None:
                self._push("assistant", [thinking])
        else:
            raise InvalidRequest(f"Input items of type {kind} are not supported for this model.", param="input")


class AnthropicProvider(UpstreamProvider):
    """Translates a `ModelCall` into a streamed Messages request and its events into deltas."""

    def __init__(self, entry: ModelEntry) -> None:
        self._settings = load_settings(entry, AnthropicSettings)
        super().__init__(
            entry=entry,
            settings=self._settings,
            auth=lambda key: {"x-api-key": key},
            protocol_headers={"anthropic-version": self._settings.anthropic_version},
        )

    def request_body(self, call: ModelCall) -> dict[str, Any]:
        """The exact JSON sent upstream for `call`."""
        settings = self._settings
        caps = settings.capabilities
        check_capabilities(call, caps)
        turns = _Turns()
        if call.instructions:
            turns.system.append(call.instructions)
        for item in call.items:
            turns.add(item)
        max_tokens = call.max_output_tokens or settings.max_tokens
        body: dict[str, Any] = {
            "model": call.upstream_model,
            "messages": turns.messages,
            "max_tokens": max_tokens,
        }
        if turns.system:
            body["system"] = (
                turns.system[0]
                if len(turns.system) == 1
                else [{"type": "text", "text": text} for text in turns.system]
            )
        tools = call.tools if call.tool_choice == "none" else call.callable_tools()
        if tools:
            body["tools"] = [
                {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "input_schema": tool.parameters,
                    **({"strict": tool.strict} if caps.strict else {}),
                }
                for tool in tools
            ]
            body["tool_choice"] = self._tool_choice(call, [tool.name for tool in tools])
        if call.reasoning_effort is not None and call.reasoning_effort != "none":
            body["thinking"] = self._thinking(call.reasoning_effort, max_tokens)
        if call.text_format:
            body.update(self._output_format(call.text_format))
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if call.top_p is not None:
            body["top_p"] = call.top_p
        if call.user:
            body["metadata"] = {"user_id": call.user}
        body["stream"] = True
        return merge_params(settings.params, body)

    @staticmethod
    def _tool_choice(call: ModelCall, names: list[str]) -> dict[str, Any]:
        if call.tool_choice == "none":
            return {"type": "none"}
        choice: dict[str, Any] = {"type": "auto" if call.tool_choice == "auto" else "any"}
        if call.tool_choice == "required" and len(names) == 1 and call.allowed_tools is not None:
            choice = {"type": "tool", "name": names[0]}
        if not call.parallel_tool_calls:
            choice["disable_parallel_tool_use"] = True
        return choice

    def _thinking(self, effort: str, max_tokens: int) -> dict[str, Any]:
        budget = self._settings.thinking_budgets.get(effort)
        if budget is None:
            raise InvalidRequest(
                f"Unsupported reasoning.effort '{effort}' for this model.", param="reasoning.effort"
            )
        # The API wants 1024 <= budget_tokens < max_tokens.
        budget = min(budget, max_tokens - 1)
        if budget < 1024:
            raise InvalidRequest(
                "max_output_tokens must be above 1024 when reasoning is enabled for this model.",
                param="max_output_tokens",
            )
        return {"type": "enabled", "budget_tokens": budget}

    @staticmethod
    def _output_format(text_format: dict[str, Any]) -> dict[str, Any]:
        kind = text_format.get("type")
        if kind == "json_schema":
            return {"output_config": {"format": {"type": "json_schema", "schema": text_format.get("schema", {})}}}
        if kind == "json_object":
            raise InvalidRequest(
                f"Model does not support text.format {kind}; use json_schema.",
                param="text.format",
                code="unsupported_feature",
            )
        return {}

    def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        return self._relay("/v1/messages", self.request_body(call), _EventReader(), last="message_stop")


@dataclass(slots=True)
class _Block:
    kind: str
    tool_index: int = -1
    has_arguments: bool = False
    signature: list[str] = field(default_factory=list)


_STOP_REASONS: dict[str, FinishReason] = {
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


class _EventReader:
    """Messages stream events → neutral deltas, with `ToolCallEnd` when a tool_use block stops.

    `message_delta` with a `stop_reason` is the finish (it carries the final usage too); the
    `message_stop` after it is only the end of the stream.
    """

    def __init__(self) -> None:
        self.finished = False
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, int] = {}
        self._stop: str | None = None

    @property
    def finishing(self) -> bool:
        return self._stop is not None or self.finished

    def end(self) -> list[Delta]:
        usage = self._usage
        return [
            Usage(
                input_tokens=sum(
                    usage.get(key, 0)
                    for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
                ),
                output_tokens=usage.get("output_tokens", 0),
                cached_tokens=usage.get("cache_read_input_tokens", 0),
            ),
            Finish(_STOP_REASONS.get(self._stop or "", "stop")),
        ]

    def read(self, event: dict[str, Any]) -> list[Delta]:
        kind = event.get("type")
        if kind == "message_start":
            self._take_usage(event["message"].get("usage"))
        elif kind == "content_block_start":
            return self._start(event["index"], event["content_block"])
        elif kind == "content_block_delta":
            return self._delta(self._blocks[event["index"]], event["delta"])
        elif kind == "content_block_stop":
            return self._stop_block(self._blocks[event["index"]])
        elif kind == "message_delta":
            self._stop = (event.get("delta") or {}).get("stop_reason") or self._stop
            self._take_usage(event.get("usage"))
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise _failure(event.get("error") or {})
        return []

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({key: int(value) for key, value in usage.items() if isinstance(value, int)})

    def _start(self, index: int, block: dict[str, Any]) -> list[Delta]:
        kind = block.get("type", "")
        state = self._blocks[index] = _Block(kind)
        if kind == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        if kind == "tool_use":
            state.tool_index, self._tools = self._tools, self._tools + 1
            arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
            state.has_arguments = bool(arguments)
            return [ToolCallDelta(state.tool_index, name=block["name"], arguments=arguments)]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(text=block["thinking"])]
        if kind == "redacted_thinking":
            return [ReasoningDelta(encrypted_content=tag_reasoning(_PROVIDER, _REDACTED + block.get("data", "")))]
        return []

    @staticmethod
    def _delta(block: _Block, delta: dict[str, Any]) -> list[Delta]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [TextDelta(delta["text"])]
        if kind == "input_json_delta" and delta.get("partial_json"):
            block.has_arguments = True
            return [ToolCallDelta(block.tool_index, arguments=delta["partial_json"])]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [ReasoningDelta(text=delta["thinking"])]
        if kind == "signature_delta":
            block.signature.append(delta.get("signature", ""))
        return []

    @staticmethod
    def _stop_block(block: _Block) -> list[Delta]:
        if block.kind == "tool_use":
            # A tool without parameters streams no JSON at all; its input is the empty object.
            opening: list[Delta] = [] if block.has_arguments else [ToolCallDelta(block.tool_index, arguments="{}")]
            return [*opening, ToolCallEnd(block.tool_index)]
        if block.kind == "thinking" and block.signature:
            return [ReasoningDelta(encrypted_content=tag_reasoning(_PROVIDER, "".join(block.signature)))]
        return []


def _failure(error: dict[str, Any]) -> InvalidRequest | UpstreamError:
    kind, message = error.get("type"), error.get("message") or "the upstream reported an error"
    if kind == "invalid_request_error":
        return InvalidRequest(f"Upstream rejected the request: {message}", code="upstream_rejected")
    return UpstreamError(
        f"The upstream stream failed: {message} ({kind})", retryable=kind != "authentication_error"
    )
