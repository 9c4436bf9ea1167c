"""A fake Anthropic Messages server: `POST /v1/messages`, JSON or the documented SSE event stream."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from fakes.script import Failure, Reply, split
from fakes.server import FakeUpstream

_STOP = {"length": "max_tokens", "content_filter": "refusal"}


def _stop_reason(reply: Reply) -> str:
    return _STOP.get(reply.finish) or ("tool_use" if reply.calls else "end_turn")


def _tool_id(reply: Reply, index: int) -> str:
    return reply.calls[index].call_id or f"toolu_fake{index}"


class FakeAnthropic(FakeUpstream):
    """Streams `message_start`, then one `content_block_start`/`_delta`…/`_stop` run per block
    (thinking with its `signature_delta`, text, tool_use with `input_json_delta`), a `ping`,
    `message_delta` (stop_reason, output usage) and `message_stop`. Blocks never interleave in this
    format, so `Reply.interleave` is ignored. `reasoning` becomes a thinking block whose signature is
    `encrypted_reasoning` (or a fixed one)."""

    path = "/v1/messages"
    base_path = ""

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("x-api-key")

    def error_response(self, failure: Failure) -> web.Response:
        kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                 529: "overloaded_error"}  # fmt: skip
        kind = kinds.get(failure.status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": failure.message}, "request_id": "req_fake"}
        return web.json_response(body, status=failure.status, headers=failure.headers)

    def _blocks(self, reply: Reply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.reasoning:
            signature = reply.encrypted_reasoning or "c2lnbmF0dXJl"
            blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": signature})
        if reply.text or reply.refusal:
            blocks.append({"type": "text", "text": reply.text + reply.refusal})
        for index, call in enumerate(reply.calls):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": _tool_id(reply, index),
                    "name": call.name,
                    "input": json.loads(call.arguments),
                }
            )
        return blocks

    def _usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "input_tokens": reply.input_tokens - reply.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": reply.output_tokens,
        }

    def _message(self, body: dict[str, Any], reply: Reply, *, final: bool) -> dict[str, Any]:
        usage = self._usage(reply) if final else {**self._usage(reply), "output_tokens": 1}
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": self._blocks(reply) if final else [],
            "stop_reason": _stop_reason(reply) if final else None,
            "stop_sequence": None,
            "usage": usage,
        }

    def render_json(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return self._message(body, reply, final=True)

    def render_events(self, body: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": self._message(body, reply, final=False)}
        ]
        for index, block in enumerate(self._blocks(reply)):
            opened = {**block, "thinking": "", "signature": ""} if block["type"] == "thinking" else dict(block)
            if block["type"] == "text":
                opened["text"] = ""
            if block["type"] == "tool_use":
                opened["input"] = {}
            events.append({"type": "content_block_start", "index": index, "content_block": opened})
            if index == 0:
                events.append({"type": "ping"})
            for delta in self._deltas(block, reply.chunks):
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
            events.append({"type": "content_block_stop", "index": index})
        if reply.stream_error is not None:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": reply.stream_error}}
            return [*((event["type"], event) for event in events), ("error", error)]
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
        events.append({"type": "message_stop"})
        return [(event["type"], event) for event in events]

    @staticmethod
    def _deltas(block: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
        if block["type"] == "thinking":
            pieces = [{"type": "thinking_delta", "thinking": piece} for piece in split(block["thinking"], chunks)]
            return [*pieces, {"type": "signature_delta", "signature": block["signature"]}]
        if block["type"] == "text":
            return [{"type": "text_delta", "text": piece} for piece in split(block["text"], chunks)]
        arguments = json.dumps(block["input"]) if block["input"] else ""
        return [{"type": "input_json_delta", "partial_json": piece} for piece in split(arguments, chunks)]
