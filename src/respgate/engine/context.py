"""The context of a request: its input items normalised and given ids, the chain before it, the checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from respgate.protocol.errors import InvalidRequest
from respgate.protocol.ids import new_id
from respgate.protocol.items import (
    AssistantPart,
    FunctionCallOutput,
    InputItem,
    InputPart,
    ItemReference,
    Message,
    OtherItem,
)
from respgate.protocol.validation import to_invalid_request

_INPUT_PART: TypeAdapter[Any] = TypeAdapter(InputPart)
_ASSISTANT_PART: TypeAdapter[Any] = TypeAdapter(AssistantPart)

# The id prefix OpenAI expects of each item type sent back as input.
_ID_PREFIX = {"message": "msg", "function_call": "fc", "reasoning": "rs"}
# The prefix of the id given to an input item sent without one.
_NEW_ID_PREFIX = {**_ID_PREFIX, "function_call_output": "fco"}


def _parts(message: Message, index: int, param: str) -> list[dict[str, Any]]:
    assistant = message.role == "assistant"
    if isinstance(message.content, str):
        part: dict[str, Any] = {"type": "output_text" if assistant else "input_text", "text": message.content}
        if assistant:
            part["annotations"] = []
        return [part]
    adapter = _ASSISTANT_PART if assistant else _INPUT_PART
    parts: list[dict[str, Any]] = []
    for position, raw in enumerate(message.content):
        kind: Any = raw.get("type") if isinstance(raw, dict) else None
        if assistant and kind not in ("output_text", "refusal"):
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values are: 'output_text' and 'refusal'.",
                param=f"{param}[{index}].content[{position}]",
                code="invalid_value",
            )
        if not assistant and kind not in ("input_text", "input_image", "input_file"):
            raise InvalidRequest(
                f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', and 'input_file'.",
                param=f"{param}[{index}].content[{position}]",
                code="invalid_value",
            )
        try:
            parsed = adapter.validate_python(raw)
        except ValidationError as exc:
            raise to_invalid_request(exc, raw, prefix=f"{param}[{index}].content[{position}]") from exc
        parts.append(parsed.model_dump(exclude_none=True))
    return parts


def _check_prefix(item_type: str, item_id: str | None, index: int, param: str) -> None:
    prefix = _ID_PREFIX.get(item_type)
    if prefix and item_id is not None and not item_id.startswith(prefix + "_"):
        raise InvalidRequest(
            f"Invalid '{param}[{index}].id': '{item_id}'. Expected an ID that begins with '{prefix}'.",
            param=f"{param}[{index}].id",
            code="invalid_id_prefix",
        )


def normalize_input(raw_input: str | list[Any] | None, *, param: str = "input") -> list[dict[str, Any]]:
    """The request's input as stored: typed items with list content and an id each.

    Item references are kept as references here; `assemble` resolves them against the chain.
    `param` is the request field the items came from, as errors name it (`items` for conversations).
    """
    if raw_input is None:
        return []
    if isinstance(raw_input, str):
        return [
            {
                "id": new_id("msg"),
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": raw_input}],
                "status": "completed",
            }
        ]
    items: list[dict[str, Any]] = []
    for index, item in enumerate(raw_input):
        items.append(_normalize_item(item, index, param))
    return items


def _normalize_item(item: InputItem, index: int, param: str) -> dict[str, Any]:
    if isinstance(item, ItemReference):
        return {"type": "item_reference", "id": item.id}
    data = item.model_dump(exclude_none=True)
    if isinstance(item, OtherItem):
        return data
    _check_prefix(item.type, item.id, index, param)
    if isinstance(item, Message):
        data["content"] = _parts(item, index, param)
    data["id"] = item.id or new_id(_NEW_ID_PREFIX[item.type])
    if isinstance(item, Message | FunctionCallOutput):
        # Stored input items read back (input_items, conversations) with a status, as OpenAI's do.
        data.setdefault("status", "completed")
    return data


def for_conversation(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as a conversation keeps them: each with an id; references left out.

    A reference can only name an item of the history the request was answered from, which for a
    conversation is the conversation itself: the item is already there.
    """
    kept: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "item_reference":
            continue
        kept.append(item if "id" in item else {"id": new_id("item"), **item})
    return kept


def assemble(
    history: list[dict[str, Any]],
    new_items: list[dict[str, Any]],
    *,
    referable: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """History plus new input with references resolved; OpenAI's pairing and duplicate checks applied.

    References resolve against `referable` (by id) when given: the history as stored, of which
    `history` may be only the newest part.
    """
    known = referable if referable is not None else {item["id"]: item for item in history if "id" in item}
    context = list(history)
    seen_ids: set[str] = set(known)
    for item in new_items:
        if item.get("type") == "item_reference":
            target = known.get(item["id"])
            if target is None:
                raise InvalidRequest(f"Item with id '{item['id']}' not found.", param="input")
            context.append(target)
            continue
        item_id = item.get("id")
        if item_id is not None:
            if item_id in seen_ids:
                raise InvalidRequest(f"Duplicate item found with id {item_id}.", param="input")
            seen_ids.add(item_id)
        context.append(item)
    _check_pairing(context)
    return context


def _check_pairing(context: list[dict[str, Any]]) -> None:
    calls: set[str] = set()
    answered: set[str] = set()
    for item in context:
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output":
            call_id = item["call_id"]
            if call_id not in calls:
                raise InvalidRequest(
                    f"No tool call found for function call output with call_id {call_id}.", param="input"
                )
            answered.add(call_id)
    for item in context:
        if item.get("type") == "function_call" and item["call_id"] not in answered:
            raise InvalidRequest(f"No tool output found for function call {item['call_id']}.", param="input")


def for_model(context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What providers see: the context without bookkeeping fields they must not depend on.

    A call to a function of a namespace tool is named as the model knows it, `<namespace>__<name>`.
    """
    shown = []
    for item in context:
        copy = {key: value for key, value in item.items() if key not in ("status", "namespace")}
        if item.get("type") == "function_call" and item.get("namespace"):
            copy["name"] = f"{item['namespace']}__{item['name']}"
        shown.append(copy)
    return shown
