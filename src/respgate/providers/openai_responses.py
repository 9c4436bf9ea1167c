"""Upstreams that speak `POST /responses` themselves (OpenAI, Azure OpenAI, vLLM, Ollama).

respgate keeps the state, so every call sends the whole context with `store: false`. Because the
upstream stores nothing, only reasoning items that carry this upstream's `encrypted_content` can be
replayed; other reasoning items (summary only, or minted by another provider) are dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from respgate.config import ModelEntry
from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.base import (
    Delta,
    Finish,
    ModelCall,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)
from respgate.providers.upstream import MalformedUpstream, UpstreamProvider, bearer, untag_reasoning
from respgate.providers.upstream_settings import UpstreamSettings, check_capabilities, load_settings, merge_params

_ITEM_FIELDS = {
    "message": ("role", "content"),
    "function_call": ("call_id", "name", "arguments"),
    "function_call_output": ("call_id", "output"),
}


class OpenAIResponsesSettings(UpstreamSettings):
    base_url: str = "https://api.openai.com/v1"
    # For models that reason without being asked (o-series): always ask for the replayable blob.
    include_encrypted_reasoning: bool = False


def _input_item(item: dict[str, Any]) -> dict[str, Any] | None:
    kind = item.get("type")
    if kind in _ITEM_FIELDS:
        # Our item ids mean nothing upstream and, with store=false, would be looked up and refused.
        return {"type": kind, **{key: item[key] for key in _ITEM_FIELDS[kind] if key in item}}
    if kind == "reasoning":
        blob = item.get("encrypted_content")
        if not blob or untag_reasoning(blob)[0] is not None:
            return None
        # Without its id: ours was minted by the gateway, and with store=false the upstream would look
        # it up and refuse the request ("Item with id 'rs_…' not found"); the blob alone is replayable.
        return {"type": "reasoning", "summary": item.get("summary") or [], "encrypted_content": blob}
    return {key: value for key, value in item.items() if key not in ("id", "status")}


class OpenAIResponsesProvider(UpstreamProvider):
    """Passes a `ModelCall` to an upstream Responses API and normalises its events into deltas."""

    def __init__(self, entry: ModelEntry) -> None:
        self._settings = load_settings(entry, OpenAIResponsesSettings)
        super().__init__(entry=entry, settings=self._settings, auth=bearer)

    def request_body(self, call: ModelCall) -> dict[str, Any]:
        """The exact JSON sent upstream for `call`."""
        settings = self._settings
        caps = settings.capabilities
        check_capabilities(call, caps)
        items = [rendered for item in call.items if (rendered := _input_item(item)) is not None]
        body: dict[str, Any] = {"model": call.upstream_model, "input": items, "stream": True, "store": False}
        if call.instructions:
            body["instructions"] = call.instructions
        tools = call.tools if call.tool_choice == "none" else call.callable_tools()
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    **({"strict": tool.strict} if caps.strict else {}),
                }
                for tool in tools
            ]
            if call.tool_choice == "required" and len(tools) == 1 and call.allowed_tools is not None:
                body["tool_choice"] = {"type": "function", "name": tools[0].name}
            else:
                body["tool_choice"] = call.tool_choice
            if caps.parallel_tool_calls:
                body["parallel_tool_calls"] = call.parallel_tool_calls
        if call.text_format:
            # An absent description is left out: the API wants a string there, not `null`.
            body["text"] = {"format": {key: value for key, value in call.text_format.items() if value is not None}}
        if call.reasoning_effort is not None:
            body["reasoning"] = {"effort": call.reasoning_effort}
        if call.include_encrypted_reasoning or settings.include_encrypted_reasoning:
            body["include"] = ["reasoning.encrypted_content"]
        if call.truncation == "auto":
            body["truncation"] = "auto"
        for key in ("max_output_tokens", "temperature", "top_p", "user"):
            if (value := getattr(call, key)) is not None:
                body[key] = value
        return merge_params(settings.params, body)

    def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        return self._relay("/responses", self.request_body(call), _EventReader(), last="response.completed")


@dataclass(slots=True)
class _Call:
    index: int
    name: str | None = None
    sent: str = ""
    started: bool = False


_DELTA_KINDS = {
    "response.output_text.delta": "text",
    "response.refusal.delta": "refusal",
    "response.reasoning_summary_text.delta": "summary",
    "response.reasoning_text.delta": "content",
}
_DONE_KINDS = {
    "response.output_text.done": ("text", "text"),
    "response.refusal.done": ("refusal", "refusal"),
    "response.reasoning_summary_text.done": ("summary", "text"),
    "response.reasoning_text.done": ("content", "text"),
}


def _piece(kind: str, text: str) -> Delta:
    if kind == "text":
        return TextDelta(text)
    if kind == "refusal":
        return RefusalDelta(text)
    return ReasoningDelta(text=text, kind="summary" if kind == "summary" else "content")


class _EventReader:
    """Upstream Responses events → neutral deltas.

    Some servers send only the `.done` form of an event (no deltas); the full value is then used,
    and never twice, so text and arguments are neither lost nor duplicated.
    """

    def __init__(self) -> None:
        self.finished = False
        self._calls: dict[int, _Call] = {}
        self._streamed: set[tuple[int, str]] = set()

    @property
    def finishing(self) -> bool:
        # `response.completed` is both the finish and the last event: there is no tail to wait for.
        return self.finished

    def end(self) -> list[Delta]:
        return []

    def read(self, event: dict[str, Any]) -> list[Delta]:
        kind = event.get("type")
        output_index = event.get("output_index", -1)
        if kind in _DELTA_KINDS:
            self._streamed.add((output_index, _DELTA_KINDS[kind]))
            return [_piece(_DELTA_KINDS[kind], event["delta"])] if event.get("delta") else []
        if kind in _DONE_KINDS:
            piece, field = _DONE_KINDS[kind]
            if (output_index, piece) in self._streamed or not event.get(field):
                return []
            self._streamed.add((output_index, piece))
            return [_piece(piece, event[field])]
        if kind == "response.output_item.added":
            item = event["item"]
            if item.get("type") == "function_call":
                return self._call_update(output_index, item.get("name"), item.get("arguments") or "")
            return []
        if kind == "response.function_call_arguments.delta":
            return self._call_update(output_index, None, event.get("delta", ""), append=True)
        if kind == "response.function_call_arguments.done":
            return self._call_update(output_index, event.get("name"), event.get("arguments", ""))
        if kind == "response.output_item.done":
            return self._item_done(output_index, event["item"])
        if kind in ("response.completed", "response.incomplete"):
            return self._terminal(event["response"])
        if kind == "response.failed":
            error = event["response"].get("error") or {}
            raise _failure(error.get("code"), error.get("message") or "the upstream response failed")
        if kind == "error":
            error = event["error"] if isinstance(event.get("error"), dict) else event
            raise _failure(error.get("code"), error.get("message") or "the upstream reported an error")
        return []

    def _call_update(
        self, output_index: int, name: str | None, arguments: str, *, append: bool = False
    ) -> list[Delta]:
        call = self._calls.get(output_index)
        if call is None:
            call = self._calls[output_index] = _Call(index=len(self._calls))
        call.name = call.name or name
        pending = arguments if append else arguments[len(call.sent) :] if arguments.startswith(call.sent) else ""
        if not call.started and call.name is None:
            # Arguments before the name (a server that skipped output_item.added): hold them back.
            call.sent += pending
            return []
        deltas: list[Delta] = []
        if not call.started:
            call.started = True
            deltas.append(ToolCallDelta(call.index, name=call.name, arguments=call.sent + pending))
        elif pending:
            deltas.append(ToolCallDelta(call.index, arguments=pending))
        call.sent += pending
        return deltas

    def _item_done(self, output_index: int, item: dict[str, Any]) -> list[Delta]:
        kind = item.get("type")
        if kind == "function_call":
            rest = self._call_update(output_index, item.get("name"), item.get("arguments") or "")
            if not self._calls[output_index].started:
                raise MalformedUpstream("a function call finished without a name")
            return [*rest, ToolCallEnd(self._calls[output_index].index)]
        deltas: list[Delta] = []
        if kind == "message":
            for part in item.get("content") or []:
                piece = "text" if part.get("type") == "output_text" else "refusal"
                text = part.get("text") if piece == "text" else part.get("refusal")
                if text and (output_index, piece) not in self._streamed:
                    deltas.append(_piece(piece, text))
        elif kind == "reasoning":
            for piece, parts in (("summary", item.get("summary")), ("content", item.get("content"))):
                text = "".join(part.get("text", "") for part in parts or [])
                if text and (output_index, piece) not in self._streamed:
                    deltas.append(_piece(piece, text))
            if item.get("encrypted_content"):
                deltas.append(ReasoningDelta(encrypted_content=item["encrypted_content"]))
        return deltas

    def _terminal(self, response: dict[str, Any]) -> list[Delta]:
        self.finished = True
        deltas: list[Delta] = []
        if isinstance(usage := response.get("usage"), dict):
            deltas.append(
                Usage(
                    input_tokens=int(usage.get("input_tokens") or 0),
                    output_tokens=int(usage.get("output_tokens") or 0),
                    cached_tokens=int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0),
                    reasoning_tokens=int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
                )
            )
        if response.get("status") == "incomplete":
            reason = (response.get("incomplete_details") or {}).get("reason")
            deltas.append(Finish("content_filter" if reason == "content_filter" else "length"))
        else:
            deltas.append(Finish("stop"))
        return deltas


def _failure(code: Any, message: str) -> InvalidRequest | UpstreamError:
    if isinstance(code, str) and code.startswith("invalid_"):
        return InvalidRequest(f"Upstream rejected the request: {message}", code="upstream_rejected")
    return UpstreamError(f"The upstream response failed: {message}", retryable=code != "content_filter")
