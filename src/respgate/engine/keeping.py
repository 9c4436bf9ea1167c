"""Keeping a finished response: the store (with its events where they must be replayed exactly) and its
conversation, both or (the store willing) neither."""

from __future__ import annotations

import logging
from typing import Any

from respgate.engine.context import for_conversation
from respgate.engine.events import Event
from respgate.engine.prepared import Prepared
from respgate.protocol.errors import ServerError
from respgate.storage.base import ConversationStore, ResponseStore, StoredResponse

log = logging.getLogger(__name__)


class Keeper:
    def __init__(self, *, store: ResponseStore, conversations: ConversationStore) -> None:
        self._store = store
        self._conversations = conversations

    async def save(
        self, prepared: Prepared, final: dict[str, Any], events: list[Event], blobs: dict[str, str]
    ) -> None:
        """Store the response (unless the client said `store: false`), replacing what was stored before."""
        if not prepared.store:
            return
        final = {**final, "output": with_blobs(final["output"], blobs)}
        record = StoredResponse(
            id=prepared.response_id,
            owner=prepared.owner,
            created_at=prepared.created_at,
            status=final["status"],
            previous_response_id=prepared.request.previous_response_id,
            response=final,
            input_items=prepared.input_items,
        )
        # Background responses keep their events: followers resume them by sequence number. Any other
        # response is replayed from itself (`GET ?stream=true`), so its events are not stored twice over.
        await self._store.save(record, events if prepared.background else None)

    async def keep(
        self, prepared: Prepared, final: dict[str, Any], events: list[Event], blobs: dict[str, str]
    ) -> None:
        """Store the response, then add its turn to its conversation: both, or (the store willing) neither."""
        await self.save(prepared, final, events, blobs)
        try:
            await self._append_to_conversation(prepared, final, blobs)
        except ServerError:
            if prepared.store:
                try:
                    await self._store.delete(prepared.response_id, prepared.owner)
                except ServerError:
                    log.warning("response %s stays stored without its conversation turn", prepared.response_id)
            raise

    async def _append_to_conversation(
        self, prepared: Prepared, final: dict[str, Any], blobs: dict[str, str]
    ) -> None:
        """Add the turn to its conversation: its input, then its output, in one append.

        Only a turn the model finished (completed, or incomplete at a limit) is added; a failed one is
        not, so the client can send the same input again. Client-side `store: false` does not matter
        here: the conversation is state the client asked for by naming it.
        """
        if prepared.conversation_id is None or final["status"] not in ("completed", "incomplete"):
            return
        items = for_conversation([*prepared.input_items, *with_blobs(final["output"], blobs)])
        # An item another request added meanwhile (same client-given id) is already there: keep it.
        added = await self._conversations.add_items(
            prepared.conversation_id, prepared.owner, items, skip_existing=True
        )
        if added is None:
            log.warning(
                "conversation %s was deleted while response %s ran; the turn was not added",
                prepared.conversation_id,
                prepared.response_id,
            )


def with_blobs(output: list[dict[str, Any]], blobs: dict[str, str]) -> list[dict[str, Any]]:
    # Reasoning blobs are kept even when the client did not ask to see them: the next turn must hand
    # them back to the backend that made them. Reads hide them unless included.
    if not blobs:
        return output
    return [
        {**item, "encrypted_content": blobs[item["id"]]} if item.get("id") in blobs else item for item in output
    ]
