"""A fake OpenAI Chat Completions server: `POST /v1/chat/completions`, JSON or SSE chunks."""

from __future__ import annotations

from typing import Any

from fakes.script import Reply, interleaved, split
from fakes.server import FakeUpstream

_CREATED = 1_764_000_000


def _finish_reason(reply: Reply) -> str:
    if reply.finish != "stop":
        return reply.finish
    return "tool_calls" if reply.calls else "stop"


def _call_id(reply: Reply, index: int) -> str:
    return reply.calls[index].call_id or f"call_fake{index}"


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0},
    }


class FakeChatCompletions(FakeUpstream):
    """Streams like OpenAI: a role chunk, content/tool-call chunks, a finish chunk, a usage-only chunk
    (when `stream_options.include_usage`), then `data: [DONE]`. `reasoning` goes out as
    `delta.reasoning_content`, as DeepSeek and vLLM send it."""

    path = "/v1/chat/completions"
    base_path = "/v1"

    def render_json(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "refusal": reply.refusal or None,
        }
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": _call_id(reply, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for index, call in enumerate(reply.calls)
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": _CREATED,
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}
            ],
            "usage": _usage(reply),
        }

    def render_events(self, body: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
            data: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": body.get("model", "fake"),
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if with_usage:
                data["usage"] = None
            return None, data

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"reasoning_content": piece}) for piece in split(reply.reasoning, reply.chunks)]
        events += [chunk({"content": piece}) for piece in split(reply.text, reply.chunks)]
        events += [chunk({"refusal": piece}) for piece in split(reply.refusal, reply.chunks)]
        # The first chunk of each call carries id, type and name with empty arguments, as OpenAI does.
        groups = [["", *split(call.arguments, reply.chunks)] for call in reply.calls]
        started: set[int] = set()
        for index, piece in interleaved(groups, alternate=reply.interleave):
            call: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
            if index not in started:
                started.add(index)
                call = {
                    "index": index,
                    "id": _call_id(reply, index),
                    "type": "function",
                    "function": {"name": reply.calls[index].name, "arguments": piece},
                }
            events.append(chunk({"tool_calls": [call]}))
        if reply.stream_error is not None:
            events.append((None, {"error": {"message": reply.stream_error, "type": "server_error", "code": None}}))
            return events
        events.append(chunk({}, _finish_reason(reply)))
        if with_usage:
            events.append(
                (
                    None,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": _CREATED,
                        "model": body.get("model", "fake"),
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": _usage(reply),
                    },
                )
            )
        events.append((None, "[DONE]"))
        return events
