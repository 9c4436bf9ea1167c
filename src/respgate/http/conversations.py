"""The Conversations API (reference §1): conversations, and their items listed, added, read and deleted."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from respgate.engine.context import for_conversation, normalize_input
from respgate.engine.intake import Intake, checked
from respgate.http.auth import KeyChecker
from respgate.http.errors import json_response
from respgate.http.params import check_include, int_param, json_body, order_param, without_hidden_reasoning
from respgate.protocol.conversations import AddConversationItems, CreateConversation, UpdateConversation
from respgate.protocol.errors import InvalidRequest, NotFound
from respgate.protocol.ids import new_id
from respgate.protocol.items import InputItem
from respgate.protocol.validation import M
from respgate.storage.base import ConversationStore, StoredConversation


class ConversationRoutes:
    def __init__(self, *, store: ConversationStore, keys: KeyChecker, max_body_bytes: int, intake: Intake) -> None:
        self._store = store
        self._keys = keys
        self._max_body = max_body_bytes
        self._intake = intake

    def routes(self) -> list[Route]:
        one = "/v1/conversations/{conversation_id}"
        return [
            Route("/v1/conversations", self.create, methods=["POST"]),
            Route(one, self.retrieve, methods=["GET"]),
            Route(one, self.update, methods=["POST"]),
            Route(one, self.delete, methods=["DELETE"]),
            Route(f"{one}/items", self.add_items, methods=["POST"]),
            Route(f"{one}/items", self.list_items, methods=["GET"]),
            Route(f"{one}/items/{{item_id}}", self.retrieve_item, methods=["GET"]),
            Route(f"{one}/items/{{item_id}}", self.delete_item, methods=["DELETE"]),
        ]

    def _owner(self, request: Request) -> str:
        return self._keys.owner(request.headers.get("authorization"))

    async def _body(self, request: Request, model: type[M]) -> M:
        body = await json_body(request, max_bytes=self._max_body)
        return await checked(body.size, self._intake.model, model, body.value)

    async def _with_items(
        self, request: Request, model: type[CreateConversation] | type[AddConversationItems]
    ) -> tuple[CreateConversation | AddConversationItems, list[dict[str, Any]]]:
        """A body that adds items, validated, with its items normalised (on a thread when large)."""
        body = await json_body(request, max_bytes=self._max_body)

        def check() -> tuple[CreateConversation | AddConversationItems, list[dict[str, Any]]]:
            parsed = self._intake.model(model, body.value, items_key="items")
            return parsed, _new_items(parsed.items or [])

        return await checked(body.size, check)

    async def create(self, request: Request) -> Response:
        owner = self._owner(request)
        body, items = await self._with_items(request, CreateConversation)
        assert isinstance(body, CreateConversation)
        conversation = StoredConversation(
            id=new_id("conv"), owner=owner, created_at=int(time.time()), metadata=body.metadata or {}
        )
        await self._store.create_conversation(conversation, items)
        return json_response(_conversation(conversation))

    async def retrieve(self, request: Request) -> Response:
        return json_response(_conversation(await self._get(request, self._owner(request))))

    async def update(self, request: Request) -> Response:
        owner = self._owner(request)
        body = await self._body(request, UpdateConversation)
        conversation_id = request.path_params["conversation_id"]
        updated = await self._store.update_conversation(conversation_id, owner, body.metadata or {})
        if updated is None:
            raise _not_found(conversation_id)
        return json_response(_conversation(updated))

    async def delete(self, request: Request) -> Response:
        owner = self._owner(request)
        conversation_id = request.path_params["conversation_id"]
        if not await self._store.delete_conversation(conversation_id, owner):
            raise _not_found(conversation_id)
        return json_response({"id": conversation_id, "object": "conversation.deleted", "deleted": True})

    async def add_items(self, request: Request) -> Response:
        owner = self._owner(request)
        include = check_include(request)
        _body, items = await self._with_items(request, AddConversationItems)
        conversation_id = request.path_params["conversation_id"]
        added = await self._store.add_items(conversation_id, owner, items)
        if added is None:
            raise _not_found(conversation_id)
        return json_response(_item_list(without_hidden_reasoning(added, include), has_more=False))

    async def list_items(self, request: Request) -> Response:
        owner = self._owner(request)
        include = check_include(request)
        limit = int_param(request, "limit", default=20, minimum=1, maximum=100)
        order = order_param(request)
        conversation_id = request.path_params["conversation_id"]
        page = await self._store.list_items(
            conversation_id, owner, after=request.query_params.get("after"), limit=limit, order=order
        )
        if page is None:
            raise _not_found(conversation_id)
        return json_response(_item_list(without_hidden_reasoning(page.items, include), has_more=page.has_more))

    async def retrieve_item(self, request: Request) -> Response:
        owner = self._owner(request)
        include = check_include(request)
        conversation = await self._get(request, owner)
        item_id = request.path_params["item_id"]
        item = await self._store.get_item(conversation.id, owner, item_id)
        if item is None:
            raise _item_not_found(item_id)
        return json_response(without_hidden_reasoning([item], include)[0])

    async def delete_item(self, request: Request) -> Response:
        owner = self._owner(request)
        conversation = await self._get(request, owner)
        item_id = request.path_params["item_id"]
        if not await self._store.delete_item(conversation.id, owner, item_id):
            raise _item_not_found(item_id)
        # OpenAI answers an item's deletion with the conversation it was removed from.
        return json_response(_conversation(conversation))

    async def _get(self, request: Request, owner: str) -> StoredConversation:
        conversation_id = request.path_params["conversation_id"]
        conversation = await self._store.get_conversation(conversation_id, owner)
        if conversation is None:
            raise _not_found(conversation_id)
        return conversation


def _new_items(raw: list[InputItem]) -> list[dict[str, Any]]:
    """Items sent by the client, validated and given ids exactly as a response's input is."""
    items = normalize_input(raw, param="items")
    for index, item in enumerate(items):
        if item.get("type") == "item_reference":
            # A conversation holds items, not pointers to items held elsewhere.
            raise InvalidRequest(
                "Item references cannot be added to a conversation; send the item itself.",
                param=f"items[{index}]",
                code="invalid_value",
            )
    return for_conversation(items)


def _conversation(conversation: StoredConversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "object": "conversation",
        "created_at": conversation.created_at,
        "metadata": conversation.metadata,
    }


def _item_list(items: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def _not_found(conversation_id: str) -> NotFound:
    # As OpenAI words it, naming no parameter.
    return NotFound(f"Conversation with id '{conversation_id}' not found.")


def _item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item with id '{item_id}' not found.")
