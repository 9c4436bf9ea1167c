"""The history a request continues from (its `previous_response_id` chain or its conversation), loaded
within the context cap, and the request's context built on it."""

from __future__ import annotations

from typing import Any

import orjson

from respgate.engine.context import assemble
from respgate.protocol.errors import InvalidRequest, NotFound
from respgate.protocol.request import CreateResponse
from respgate.storage.base import ConversationStore, History, ResponseStore

# OpenAI's wording for an input beyond the model's context window.
CONTEXT_TOO_LARGE = "Your input exceeds the context window of this model. Please adjust your input and try again."


def context_too_large() -> InvalidRequest:
    return InvalidRequest(CONTEXT_TOO_LARGE, param="input", code="context_length_exceeded")


def conversation_of(request: CreateResponse) -> str | None:
    """The id of the conversation the request continues, if it names one."""
    conversation = request.conversation
    return conversation if isinstance(conversation, str) or conversation is None else conversation.id


def _previous_not_found(response_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


class ContextLoader:
    """Loads a request's history, at most `max_bytes` of stored JSON, and builds the context on it.

    The cap bounds what the server reads on a client's behalf: the new input is bounded by the body
    size. Over the cap, `truncation: "disabled"` (the default) is OpenAI's `context_length_exceeded`,
    found from the stored sizes before any content is read. `truncation: "auto"` leaves out the oldest
    history instead, as OpenAI does: whole responses of a chain (their sizes are known before anything
    is read, and a response's input and output belong together), single items of a conversation (each
    its own row). A chain whose older part is gone (deleted or purged) is refused naming the missing
    response, or with `"auto"` starts after the gap. Item references count as many bytes as the items
    they name, so that a small input cannot multiply a large history.
    """

    def __init__(self, *, responses: ResponseStore, conversations: ConversationStore, max_bytes: int) -> None:
        self._responses = responses
        self._conversations = conversations
        self._max_bytes = max_bytes

    async def context(
        self, request: CreateResponse, new_items: list[dict[str, Any]], *, owner: str
    ) -> list[dict[str, Any]]:
        """History plus new input with references resolved; the checks of `assemble` applied."""
        truncate = request.truncation == "auto"
        history = await self._history(request, owner, truncate=truncate)
        if history is None:
            return assemble([], new_items)
        if history.truncated and not truncate:
            raise context_too_large()
        items = history.items
        referable = {item["id"]: item for item in items if "id" in item}
        overflow = history.loaded + _referenced_bytes(new_items, referable) - self._max_bytes
        if overflow > 0:
            if not truncate:
                raise context_too_large()
            items = _without_oldest(items, overflow)
        if truncate and (history.truncated or history.gap is not None or overflow > 0):
            items = _without_orphan_outputs(items)
        return assemble(items, new_items, referable=referable)

    async def _history(self, request: CreateResponse, owner: str, *, truncate: bool) -> History | None:
        budget = self._max_bytes
        if request.previous_response_id is not None:
            chain = await self._responses.history(
                request.previous_response_id, owner, budget=budget, truncate=truncate
            )
            if chain is None:
                raise _previous_not_found(request.previous_response_id)
            # Answering without a lost ancestor would silently drop part of the conversation, unless the
            # client allowed the oldest part to be dropped.
            if chain.gap is not None and not truncate:
                raise _previous_not_found(chain.gap)
            return chain
        conversation_id = conversation_of(request)
        if conversation_id is None:
            return None
        conversation = await self._conversations.history(conversation_id, owner, budget=budget, truncate=truncate)
        if conversation is None:
            # OpenAI answers an unknown conversation with a 404 that names no parameter.
            raise NotFound(f"Conversation with id '{conversation_id}' not found.")
        return conversation


def _referenced_bytes(new_items: list[dict[str, Any]], referable: dict[str, dict[str, Any]]) -> int:
    sizes: dict[str, int] = {}
    total = 0
    for item in new_items:
        target = referable.get(item["id"]) if item.get("type") == "item_reference" else None
        if target is not None:
            if item["id"] not in sizes:
                sizes[item["id"]] = len(orjson.dumps(target))
            total += sizes[item["id"]]
    return total


def _without_oldest(items: list[dict[str, Any]], overflow: int) -> list[dict[str, Any]]:
    """`items` without as many of the oldest as free `overflow` bytes; over the cap if that is all of them."""
    freed = 0
    for index, item in enumerate(items):
        if freed >= overflow:
            return items[index:]
        freed += len(orjson.dumps(item))
    if freed >= overflow:
        return []
    raise context_too_large()


def _without_orphan_outputs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Truncated history without the tool outputs whose calls were left out with the older part."""
    calls: set[str] = set()
    kept = []
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output" and item["call_id"] not in calls:
            continue
        kept.append(item)
    return kept
