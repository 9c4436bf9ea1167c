"""Pure constructors of the Responses stream events and items (reference §6.2).

They only shape dicts; the builder decides which to emit and stamps sequence numbers (`item_events`
gives the order of a finished item's events, for a replay).
"""

from __future__ import annotations

from typing import Any, Literal

from respgate.providers.base import Usage

Event = dict[str, Any]
PartKind = Literal["output_text", "refusal", "summary", "reasoning_text"]


def lifecycle(kind: str, response: dict[str, Any]) -> Event:
    return {"type": f"response.{kind}", "response": response}


def item_added(output_index: int, item: dict[str, Any]) -> Event:
    return {"type": "response.output_item.added", "output_index": output_index, "item": item}


def item_done(output_index: int, item: dict[str, Any]) -> Event:
    return {"type": "response.output_item.done", "output_index": output_index, "item": item}


def _where(item_id: str, output_index: int, kind: PartKind, index: int) -> Event:
    key = "summary_index" if kind == "summary" else "content_index"
    return {"item_id": item_id, "output_index": output_index, key: index}


def empty_part(kind: PartKind) -> dict[str, Any]:
    if kind == "output_text":
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    if kind == "refusal":
        return {"type": "refusal", "refusal": ""}
    return {"type": "summary_text" if kind == "summary" else "reasoning_text", "text": ""}


def full_part(kind: PartKind, text: str) -> dict[str, Any]:
    part = empty_part(kind)
    part["refusal" if kind == "refusal" else "text"] = text
    return part


def part_added(item_id: str, output_index: int, kind: PartKind, index: int) -> Event:
    """`content_part.added`, or `reasoning_summary_part.added` for a summary."""
    kind_name = "reasoning_summary_part.added" if kind == "summary" else "content_part.added"
    return {
        "type": f"response.{kind_name}",
        **_where(item_id, output_index, kind, index),
        "part": empty_part(kind),
    }


_DELTA = {
    "output_text": "response.output_text.delta",
    "refusal": "response.refusal.delta",
    "summary": "response.reasoning_summary_text.delta",
    "reasoning_text": "response.reasoning_text.delta",
}


def part_delta(item_id: str, output_index: int, kind: PartKind, index: int, text: str) -> Event:
    event = {"type": _DELTA[kind], **_where(item_id, output_index, kind, index), "delta": text}
    if kind == "output_text":
        event["logprobs"] = []
    return event


def part_done(item_id: str, output_index: int, kind: PartKind, index: int, text: str) -> list[Event]:
    """The events that close a part: its text `.done`, then the part's own `.done`."""
    where = _where(item_id, output_index, kind, index)
    part = full_part(kind, text)
    if kind == "output_text":
        closing: Event = {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
    elif kind == "refusal":
        closing = {"type": "response.refusal.done", **where, "refusal": text}
    elif kind == "summary":
        closing = {"type": "response.reasoning_summary_text.done", **where, "text": text}
        return [closing, {"type": "response.reasoning_summary_part.done", **where, "part": part}]
    else:
        closing = {"type": "response.reasoning_text.done", **where, "text": text}
    return [closing, {"type": "response.content_part.done", **where, "part": part}]


def message_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def reasoning_item(item_id: str, parts: list[dict[str, Any]], encrypted_content: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [part for part in parts if part["type"] == "summary_text"],
    }
    content = [part for part in parts if part["type"] == "reasoning_text"]
    if content:
        item["content"] = content
    if encrypted_content is not None:
        item["encrypted_content"] = encrypted_content
    return item


def function_call_item(
    item_id: str, call_id: str, name: str, *, arguments: str, status: str, namespace: str | None = None
) -> dict[str, Any]:
    item = {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "status": status,
        "arguments": arguments,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def arguments_delta(item_id: str, output_index: int, chunk: str) -> Event:
    return {
        "type": "response.function_call_arguments.delta",
        "item_id": item_id,
        "output_index": output_index,
        "delta": chunk,
    }


def arguments_done(item_id: str, output_index: int, name: str, arguments: str) -> Event:
    return {
        "type": "response.function_call_arguments.done",
        "item_id": item_id,
        "output_index": output_index,
        "name": name,
        "arguments": arguments,
    }


def item_events(output_index: int, item: dict[str, Any]) -> list[Event]:
    """The events of one finished item as a stream carries it: added, each part (or the arguments)
    with its whole text in one delta, done with the item itself. For replaying a stored response."""
    item_id = item["id"]
    kind = item["type"]
    if kind == "message":
        out = [item_added(output_index, message_item(item_id, "in_progress", []))]
        for index, part in enumerate(item["content"]):
            if part["type"] == "refusal":
                out += _part_events(item_id, output_index, "refusal", index, part["refusal"])
            else:
                out += _part_events(item_id, output_index, "output_text", index, part["text"])
    elif kind == "reasoning":
        out = [item_added(output_index, {"id": item_id, "type": "reasoning", "summary": []})]
        for index, part in enumerate(item.get("summary") or []):
            out += _part_events(item_id, output_index, "summary", index, part["text"])
        for index, part in enumerate(item.get("content") or []):
            out += _part_events(item_id, output_index, "reasoning_text", index, part["text"])
    elif kind == "function_call":
        name, arguments = item["name"], item["arguments"]
        added = function_call_item(
            item_id, item["call_id"], name, arguments="", status="in_progress", namespace=item.get("namespace")
        )
        out = [item_added(output_index, added)]
        if arguments:
            out.append(arguments_delta(item_id, output_index, arguments))
        out.append(arguments_done(item_id, output_index, name, arguments))
    else:
        out = [item_added(output_index, item)]
    out.append(item_done(output_index, item))
    return out


def _part_events(item_id: str, output_index: int, kind: PartKind, index: int, text: str) -> list[Event]:
    out = [part_added(item_id, output_index, kind, index)]
    if text:
        out.append(part_delta(item_id, output_index, kind, index, text))
    return out + part_done(item_id, output_index, kind, index, text)


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        # `cache_write_tokens` is required by the SDK's `InputTokensDetails` type (openai 3.x).
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
