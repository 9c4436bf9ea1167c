"""The streamed-event validator: every rule of reference §6 that a client depends on, in one pass.

`check_stream(events)` takes the events as parsed from SSE `data:` lines and returns the terminal
response. It checks order and pairing (lifecycle, items serialised, content parts, deltas), ids and
sequence numbers, that the deltas add up to the `.done` values and to the final output, the
terminal event and usage, and validates every event and the final response against the official
SDK types and the Open Responses schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from support import openresponses

_EVENT = TypeAdapter[Any](ResponseStreamEvent)

TERMINAL = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}
LIFECYCLE = {"response.created", "response.queued", "response.in_progress", *TERMINAL}
ITEM_PREFIX = {"message": "msg_", "function_call": "fc_", "reasoning": "rs_"}
DELTA_TYPES = {
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
}


@dataclass
class _Part:
    kind: str  # output_text | refusal | reasoning_text | summary_text
    text: list[str] = field(default_factory=list)
    done_text: str | None = None
    closed: bool = False


@dataclass
class _Item:
    index: int
    item_id: str
    kind: str
    name: str | None
    parts: dict[int, _Part] = field(default_factory=dict)  # content parts (message, reasoning content)
    summary: dict[int, _Part] = field(default_factory=dict)  # reasoning summary parts
    arguments: list[str] = field(default_factory=list)
    arguments_done: str | None = None


# `incomplete_details.reason` values the server uses that the SDK's type does not list. A test that
# expects one says so (`extra_reasons=`); the type check then runs with a listed reason in its place.
OUTSIDE_SDK_REASONS = frozenset({"client_disconnected"})
# Likewise the `error.code` values of a failed response (`extra_codes=`).
OUTSIDE_SDK_CODES = frozenset({"store_error"})


def _for_sdk(value: dict[str, Any], extra_reasons: frozenset[str], extra_codes: frozenset[str]) -> dict[str, Any]:
    response = value.get("response", value)
    if not isinstance(response, dict):
        return value
    patched = response
    details = response.get("incomplete_details")
    if details and details.get("reason") in extra_reasons:
        assert details["reason"] in OUTSIDE_SDK_REASONS, details
        patched = {**patched, "incomplete_details": {**details, "reason": "max_output_tokens"}}
    error = response.get("error")
    if error and error.get("code") in extra_codes:
        assert error["code"] in OUTSIDE_SDK_CODES, error
        patched = {**patched, "error": {**error, "code": "server_error"}}
    if patched is response:
        return value
    return {**value, "response": patched} if "response" in value else patched


def check_sdk_types(
    event: dict[str, Any],
    *,
    extra_reasons: frozenset[str] = frozenset(),
    extra_codes: frozenset[str] = frozenset(),
) -> None:
    """The official SDK's pydantic types accept the event (strict validation, not `construct`)."""
    _EVENT.validate_python(_for_sdk(event, extra_reasons, extra_codes))


def check_response(
    response: dict[str, Any],
    *,
    extra_reasons: frozenset[str] = frozenset(),
    extra_codes: frozenset[str] = frozenset(),
) -> Response:
    """A final (non-streamed or terminal) Response: SDK type, Open Responses schema, usage and status rules."""
    parsed = Response.model_validate(_for_sdk(response, extra_reasons, extra_codes))
    openresponses.check_response(response)
    assert response["id"].startswith("resp_"), response["id"]
    assert response["object"] == "response"
    for item in response["output"]:
        prefix = ITEM_PREFIX.get(item["type"])
        if prefix:
            assert item["id"].startswith(prefix), item
        if item["type"] == "function_call":
            assert item["call_id"].startswith("call_"), item
    status = response["status"]
    if status in ("completed", "incomplete"):
        _check_usage(response["usage"])
    if status == "completed":
        assert response["error"] is None and response["incomplete_details"] is None, response
        assert isinstance(response["completed_at"], int), response["completed_at"]
    else:
        assert response["completed_at"] is None, response
    if status == "incomplete":
        assert response["incomplete_details"] and response["incomplete_details"]["reason"], response
        assert response["error"] is None
    if status == "failed":
        error = response["error"]
        assert error and error["code"] and error["message"], response
        if response["usage"] is not None:
            _check_usage(response["usage"])
    return parsed


def _check_usage(usage: dict[str, Any] | None) -> None:
    assert usage is not None, "usage is missing"
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert isinstance(usage[key], int) and usage[key] >= 0, usage
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], usage
    assert isinstance(usage["input_tokens_details"]["cached_tokens"], int), usage
    assert isinstance(usage["output_tokens_details"]["reasoning_tokens"], int), usage


def check_stream(
    events: list[dict[str, Any]],
    *,
    extra_reasons: frozenset[str] = frozenset(),
    extra_codes: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Validate a whole stream; return the terminal event's response."""
    assert len(events) >= 3, f"a stream needs created, in_progress and a terminal event: {events}"
    for event in events:
        check_sdk_types(event, extra_reasons=extra_reasons, extra_codes=extra_codes)
        openresponses.check_event(event)

    # Lifecycle and sequence numbers; background work announces itself queued before it starts.
    assert events[0]["type"] == "response.created", events[0]["type"]
    assert events[0]["sequence_number"] == 0
    queued = events[1]["type"] == "response.queued"
    opening = 3 if queued else 2
    if queued:
        assert events[0]["response"]["status"] == events[1]["response"]["status"] == "queued"
        assert events[0]["response"]["background"] is True
    assert events[opening - 1]["type"] == "response.in_progress", events[opening - 1]["type"]
    numbers = [event["sequence_number"] for event in events]
    assert numbers == list(range(len(events))), f"sequence numbers are not 0..n: {numbers}"
    terminals = [i for i, event in enumerate(events) if event["type"] in TERMINAL]
    assert terminals == [len(events) - 1], f"terminal events at {terminals} of {len(events)}"
    assert not any(event["type"] == "error" for event in events)
    response_id = events[0]["response"]["id"]
    for event in events:
        if event["type"] in LIFECYCLE:
            assert event["response"]["id"] == response_id, "the response id changed mid-stream"
    for event in events[:opening]:
        snapshot = event["response"]
        assert snapshot["status"] in ("queued", "in_progress"), snapshot["status"]
        assert snapshot["output"] == [] and snapshot["usage"] is None

    done_items = _check_items(events[opening:-1])

    terminal = events[-1]
    final: dict[str, Any] = terminal["response"]
    assert final["status"] == TERMINAL[terminal["type"]], (terminal["type"], final["status"])
    assert final["output"] == done_items, "terminal output differs from the output_item.done items"
    # The echoed request fields do not change between the first and the last snapshot.
    stable = set(events[0]["response"]) - {
        "status",
        "output",
        "usage",
        "completed_at",
        "error",
        "incomplete_details",
    }
    for key in stable:
        assert final[key] == events[0]["response"][key], f"{key} changed mid-stream"
    check_response(final, extra_reasons=extra_reasons, extra_codes=extra_codes)
    return final


def _check_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The item events between in_progress and the terminal event; returns the done items in order."""
    current: _Item | None = None
    done: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    for event in events:
        kind = event["type"]
        assert kind not in LIFECYCLE, f"{kind} in the middle of a stream"
        if kind == "response.output_item.added":
            assert current is None, (
                f"item {event['output_index']} added before item {current and current.index} is done"
            )
            assert event["output_index"] == len(done), (
                f"output_index {event['output_index']}, expected {len(done)}"
            )
            item = event["item"]
            assert item["id"] not in seen_ids, f"item id {item['id']} reused"
            seen_ids.add(item["id"])
            prefix = ITEM_PREFIX.get(item["type"])
            assert prefix is None or item["id"].startswith(prefix), item
            if item["type"] == "message":
                assert item["content"] == [] and item["status"] == "in_progress" and item["role"] == "assistant"
            elif item["type"] == "function_call":
                assert item["arguments"] == "" and item["status"] == "in_progress", item
                assert item["call_id"].startswith("call_") and item["name"], item
            current = _Item(event["output_index"], item["id"], item["type"], item.get("name"))
            continue
        assert current is not None, f"{kind} outside an item"
        assert event["output_index"] == current.index, f"{kind} for output_index {event['output_index']}"
        if kind == "response.output_item.done":
            item = event["item"]
            assert item["id"] == current.item_id and item["type"] == current.kind, "item identity changed"
            _check_done_item(current, item)
            done.append(item)
            current = None
            continue
        assert event["item_id"] == current.item_id, f"{kind} names item {event['item_id']}"
        _apply(current, event)
    assert current is None, f"item {current.index if current else ''} was added but never done"
    return done


def _open_part(parts: dict[int, _Part], index: int, kind: str, where: str) -> None:
    assert index == len(parts), f"{where}: part index {index}, expected {len(parts)}"
    assert all(part.closed for part in parts.values()), f"{where}: a part is still open"
    parts[index] = _Part(kind)


def _part(parts: dict[int, _Part], index: int, kind: str, where: str) -> _Part:
    part = parts.get(index)
    assert part is not None, f"{where} before its part was added (index {index})"
    assert not part.closed, f"{where} after its part was done"
    assert part.kind == kind, f"{where} on a {part.kind} part"
    return part


def _apply(item: _Item, event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind in DELTA_TYPES:
        assert isinstance(event["delta"], str)
    if kind == "response.content_part.added":
        part = event["part"]
        assert item.kind in ("message", "reasoning"), f"content part on a {item.kind}"
        assert part.get("text", part.get("refusal")) == "", f"content_part.added with content: {part}"
        _open_part(item.parts, event["content_index"], part["type"], kind)
    elif kind in ("response.output_text.delta", "response.refusal.delta", "response.reasoning_text.delta"):
        part_kind = {"response.output_text.delta": "output_text", "response.refusal.delta": "refusal"}.get(
            kind, "reasoning_text"
        )
        part = _part(item.parts, event["content_index"], part_kind, kind)
        assert part.done_text is None, f"{kind} after its .done"
        part.text.append(event["delta"])
    elif kind in ("response.output_text.done", "response.refusal.done", "response.reasoning_text.done"):
        part_kind = {"response.output_text.done": "output_text", "response.refusal.done": "refusal"}.get(
            kind, "reasoning_text"
        )
        part = _part(item.parts, event["content_index"], part_kind, kind)
        full = event["refusal"] if kind == "response.refusal.done" else event["text"]
        assert full == "".join(part.text), f"{kind} text differs from its deltas"
        part.done_text = full
    elif kind == "response.content_part.done":
        part = _part(item.parts, event["content_index"], event["part"]["type"], kind)
        assert part.done_text is not None, "content_part.done before the text's .done"
        shown = event["part"].get("text", event["part"].get("refusal"))
        assert shown == part.done_text, "content_part.done differs from the text's .done"
        part.closed = True
    elif kind == "response.reasoning_summary_part.added":
        assert item.kind == "reasoning" and event["part"]["text"] == ""
        _open_part(item.summary, event["summary_index"], "summary_text", kind)
    elif kind == "response.reasoning_summary_text.delta":
        _part(item.summary, event["summary_index"], "summary_text", kind).text.append(event["delta"])
    elif kind == "response.reasoning_summary_text.done":
        part = _part(item.summary, event["summary_index"], "summary_text", kind)
        assert event["text"] == "".join(part.text), "summary text differs from its deltas"
        part.done_text = event["text"]
    elif kind == "response.reasoning_summary_part.done":
        part = _part(item.summary, event["summary_index"], "summary_text", kind)
        assert part.done_text is not None and event["part"]["text"] == part.done_text
        part.closed = True
    elif kind == "response.function_call_arguments.delta":
        assert item.kind == "function_call" and item.arguments_done is None, kind
        item.arguments.append(event["delta"])
    elif kind == "response.function_call_arguments.done":
        assert item.kind == "function_call" and item.arguments_done is None, kind
        assert event.get("name") == item.name, f"arguments.done names {event.get('name')!r}, not {item.name!r}"
        assert event["arguments"] == "".join(item.arguments), "arguments.done differs from its deltas"
        item.arguments_done = event["arguments"]
    else:
        raise AssertionError(f"unexpected event {kind}")


def _check_done_item(item: _Item, final: dict[str, Any]) -> None:
    if item.kind == "message":
        assert final["status"] in ("completed", "incomplete"), final
        assert all(part.closed for part in item.parts.values()), "message done with a part still open"
        assert len(final["content"]) == len(item.parts), "message content differs from its parts"
        for index, part in enumerate(final["content"]):
            shown = part.get("text", part.get("refusal"))
            assert part["type"] == item.parts[index].kind and shown == item.parts[index].done_text
    elif item.kind == "function_call":
        assert final["status"] == "completed", final
        assert item.arguments_done is not None, "function call done without arguments.done"
        assert final["arguments"] == item.arguments_done and final["name"] == item.name, final
    elif item.kind == "reasoning":
        assert all(part.closed for part in [*item.parts.values(), *item.summary.values()])
        assert [part["text"] for part in final["summary"]] == [p.done_text for p in item.summary.values()]
        assert [part["text"] for part in final.get("content") or []] == [p.done_text for p in item.parts.values()]
