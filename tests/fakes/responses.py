"""A fake OpenAI Responses server: `POST /v1/responses`, JSON or the documented SSE event stream."""

from __future__ import annotations

from typing import Any

from fakes.script import Reply, interleaved, split
from fakes.server import FakeUpstream

_CREATED = 1_764_000_000


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


class FakeResponses(FakeUpstream):
    """Emits `response.created`, `in_progress`, then per item `output_item.added` → part/delta/done
    events → `output_item.done`, and `response.completed` or `response.incomplete`. Reasoning items
    carry `encrypted_content` only when the request's `include` asks for it, as OpenAI does."""

    path = "/v1/responses"
    base_path = "/v1"

    def _items(self, body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if reply.reasoning or reply.encrypted_reasoning:
            reasoning: dict[str, Any] = {
                "id": "rs_fake",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": reply.reasoning}] if reply.reasoning else [],
            }
            if "reasoning.encrypted_content" in (body.get("include") or []):
                reasoning["encrypted_content"] = reply.encrypted_reasoning
            items.append(reasoning)
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []})
        if reply.refusal:
            content.append({"type": "refusal", "refusal": reply.refusal})
        if content:
            items.append(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": content,
                }
            )
        for index, call in enumerate(reply.calls):
            items.append(
                {
                    "id": f"fc_fake{index}",
                    "type": "function_call",
                    "call_id": call.call_id or f"call_fake{index}",
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": "completed",
                }
            )
        return items

    def _response(self, body: dict[str, Any], reply: Reply, status: str, output: list[Any]) -> dict[str, Any]:
        incomplete = {"reason": "max_output_tokens" if reply.finish == "length" else "content_filter"}
        return {
            "id": "resp_fake",
            "object": "response",
            "created_at": _CREATED,
            "status": status,
            "error": None,
            "incomplete_details": incomplete if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "model": body.get("model", "fake"),
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "store": False,
            "usage": _usage(reply) if status != "in_progress" else None,
        }

    def _final_status(self, reply: Reply) -> str:
        return "completed" if reply.finish == "stop" else "incomplete"

    def render_json(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return self._response(body, reply, self._final_status(reply), self._items(body, reply))

    def render_events(self, body: dict[str, Any], reply: Reply) -> list[tuple[str | None, Any]]:
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": self._response(body, reply, "in_progress", [])},
            {"type": "response.in_progress", "response": self._response(body, reply, "in_progress", [])},
        ]
        items = self._items(body, reply)
        calls: list[tuple[int, dict[str, Any]]] = []
        for output_index, item in enumerate(items):
            if item["type"] == "function_call":
                calls.append((output_index, item))
            else:
                events += self._item_events(output_index, item, reply.chunks)
        events += self._call_events(calls, reply)
        terminal = self._final_status(reply)
        final = self._response(body, reply, terminal, items)
        if reply.stream_error is not None:
            terminal = "failed"
            final = {
                **final,
                "status": "failed",
                "incomplete_details": None,
                "error": {"code": "server_error", "message": reply.stream_error},
            }
        events.append({"type": f"response.{terminal}", "response": final})
        if not reply.deltas:
            events = [event for event in events if not event["type"].endswith(".delta")]
        for number, event in enumerate(events):
            event["sequence_number"] = number
        return [(event["type"], event) for event in events]

    @staticmethod
    def _item_events(output_index: int, item: dict[str, Any], chunks: int) -> list[dict[str, Any]]:
        where = {"item_id": item["id"], "output_index": output_index}
        events: list[dict[str, Any]] = []
        if item["type"] == "reasoning":
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": output_index,
                    "item": {**item, "summary": [], "encrypted_content": None},
                }
            )
            for summary_index, part in enumerate(item["summary"]):
                at = {**where, "summary_index": summary_index}
                events.append(
                    {
                        "type": "response.reasoning_summary_part.added",
                        **at,
                        "part": {"type": "summary_text", "text": ""},
                    }
                )
                events += [
                    {"type": "response.reasoning_summary_text.delta", **at, "delta": piece}
                    for piece in split(part["text"], chunks)
                ]
                events.append({"type": "response.reasoning_summary_text.done", **at, "text": part["text"]})
                events.append({"type": "response.reasoning_summary_part.done", **at, "part": part})
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": output_index,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            for content_index, part in enumerate(item["content"]):
                at = {**where, "content_index": content_index}
                empty = {**part, "text": ""} if part["type"] == "output_text" else {**part, "refusal": ""}
                events.append({"type": "response.content_part.added", **at, "part": empty})
                if part["type"] == "output_text":
                    events += [
                        {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
                        for piece in split(part["text"], chunks)
                    ]
                    events.append(
                        {"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []}
                    )
                else:
                    events += [
                        {"type": "response.refusal.delta", **at, "delta": piece}
                        for piece in split(part["refusal"], chunks)
                    ]
                    events.append({"type": "response.refusal.done", **at, "refusal": part["refusal"]})
                events.append({"type": "response.content_part.done", **at, "part": part})
        events.append({"type": "response.output_item.done", "output_index": output_index, "item": item})
        return events

    @staticmethod
    def _call_events(calls: list[tuple[int, dict[str, Any]]], reply: Reply) -> list[dict[str, Any]]:
        def added(output_index: int, item: dict[str, Any]) -> dict[str, Any]:
            return {
                "type": "response.output_item.added",
                "output_index": output_index,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }

        def done(output_index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
            return [
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": output_index,
                    "name": item["name"],
                    "arguments": item["arguments"],
                },
                {"type": "response.output_item.done", "output_index": output_index, "item": item},
            ]

        def delta(position: int, piece: str) -> dict[str, Any]:
            output_index, item = calls[position]
            return {
                "type": "response.function_call_arguments.delta",
                "item_id": item["id"],
                "output_index": output_index,
                "delta": piece,
            }

        groups = [split(item["arguments"], reply.chunks) for _, item in calls]
        if not reply.interleave:
            events: list[dict[str, Any]] = []
            for position, (output_index, item) in enumerate(calls):
                events.append(added(output_index, item))
                events += [delta(position, piece) for piece in groups[position]]
                events += done(output_index, item)
            return events
        # Interleaved: every call opens, argument pieces alternate, then every call closes.
        events = [added(output_index, item) for output_index, item in calls]
        events += [delta(position, piece) for position, piece in interleaved(groups, alternate=True)]
        for output_index, item in calls:
            events += done(output_index, item)
        return events
