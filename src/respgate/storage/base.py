"""The store contracts used by the engine and the HTTP layer: responses, conversations, background jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResponse:
    """A response as persisted: the full Response JSON and the request's own input items (with ids)."""

    id: str
    owner: str
    created_at: int
    status: str
    previous_response_id: str | None
    response: dict[str, Any]
    input_items: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """The stored items a request continues from, oldest first, as far as they fit a byte budget.

    Sizes are bytes of stored JSON. `size` counts the whole history, loaded or not; `loaded` counts
    `items`. `truncated` says older items were left out: those beyond the budget (or, for a chain, beyond
    the longest walk), or all of them when the caller asked for all or nothing. For a chain, `gap` names
    an ancestor that is gone (deleted, purged, or another owner's): what came before it is unknown.
    """

    items: list[dict[str, Any]]
    size: int
    loaded: int
    truncated: bool
    gap: str | None = None


class ResponseStore(Protocol):
    async def save(self, record: StoredResponse, events: list[dict[str, Any]] | None = None) -> None:
        """Insert or replace a response (and, if given, its streamed events) in one transaction."""
        ...

    async def get(self, response_id: str, owner: str) -> StoredResponse | None: ...

    async def history(self, response_id: str, owner: str, *, budget: int, truncate: bool) -> History | None:
        """The items of `response_id` and its ancestors (each response's input, then its output); None if unknown.

        Whole responses are loaded, newest first, while they fit `budget`; without `truncate`, nothing is
        loaded unless all of them fit. Sizes are measured before anything is read.
        """
        ...

    async def events(self, response_id: str, owner: str) -> list[dict[str, Any]] | None:
        """The events streamed for a response, in order (for `GET ?stream=true` replay)."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool: ...

    async def purge(self, *, before: int, limit: int) -> int:
        """Delete up to `limit` of the oldest finished responses created before `before` (unix seconds).

        Any owner's; queued and running responses are kept. Returns how many were deleted.
        """
        ...

    def backlog(self) -> int:
        """Operations in progress in this process, waiting or running: how far behind the store is."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredConversation:
    """A conversation's own fields; its items are stored (and read) separately, in order."""

    id: str
    owner: str
    created_at: int
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemPage:
    """One page of a conversation's items, in the order asked for."""

    items: list[dict[str, Any]]
    has_more: bool


class ConversationStore(Protocol):
    """Conversations and their ordered items. Every item has an `id`, unique within its conversation.

    Every method is scoped to `owner`: another owner's conversation reads as absent. Methods that take
    items raise `InvalidRequest` ("Duplicate item found with id …") when an id is already taken.
    """

    async def create_conversation(self, conversation: StoredConversation, items: list[dict[str, Any]]) -> None:
        """Insert a conversation with its first items, in one transaction."""
        ...

    async def get_conversation(self, conversation_id: str, owner: str) -> StoredConversation | None: ...

    async def update_conversation(
        self, conversation_id: str, owner: str, metadata: dict[str, str]
    ) -> StoredConversation | None:
        """Replace the metadata; None if there is no such conversation."""
        ...

    async def delete_conversation(self, conversation_id: str, owner: str) -> bool:
        """Delete a conversation and its items; False if there was none."""
        ...

    async def add_items(
        self, conversation_id: str, owner: str, items: list[dict[str, Any]], *, skip_existing: bool = False
    ) -> list[dict[str, Any]] | None:
        """Append `items` after the last item, atomically; the items added, or None if no such conversation.

        Concurrent appends to one conversation never interleave. With `skip_existing`, items whose id the
        conversation already holds are left out instead of failing the append.
        """
        ...

    async def history(self, conversation_id: str, owner: str, *, budget: int, truncate: bool) -> History | None:
        """The items, oldest first; None if no such conversation.

        The newest items are loaded while they fit `budget`; without `truncate`, nothing is loaded unless
        all of them fit. Sizes are summed before anything is read.
        """
        ...

    async def list_items(
        self, conversation_id: str, owner: str, *, after: str | None, limit: int, order: Literal["asc", "desc"]
    ) -> ItemPage | None:
        """Up to `limit` items after the item `after` (in `order`); None if no such conversation.

        An `after` the conversation does not hold raises `InvalidRequest` (param `after`).
        """
        ...

    async def get_item(self, conversation_id: str, owner: str, item_id: str) -> dict[str, Any] | None: ...

    async def delete_item(self, conversation_id: str, owner: str, item_id: str) -> bool:
        """Remove one item; False if the conversation or the item is unknown."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BackgroundJob:
    """A background response that has not ended: what is needed to run it again from its input."""

    response_id: str
    owner: str
    created_at: int
    # The validated request body; None for a response queued before jobs were kept (it cannot run again).
    request: dict[str, Any] | None
    attempts: int = 0
    cancel_requested: bool = False


CancelOutcome = Literal["absent", "taken", "requested"]


class JobStore(Protocol):
    """Leases on background jobs, by the database's clock. `holder` names one process for its lifetime.

    A job is claimable when nobody holds it or its holder's lease has run out; every method that takes
    a job does so atomically, so two processes never hold one job at once.
    """

    async def add(self, job: BackgroundJob, *, holder: str, lease_seconds: float) -> None:
        """Insert a job held by `holder`, counted as its first attempt."""
        ...

    async def claim(self, holder: str, *, limit: int, lease_seconds: float) -> list[BackgroundJob]:
        """Take up to `limit` claimable jobs, oldest first, each with one more attempt counted."""
        ...

    async def renew(self, holder: str, response_ids: list[str], *, lease_seconds: float) -> dict[str, bool]:
        """Extend the leases `holder` still has among `response_ids`: id -> whether a cancel was requested."""
        ...

    async def release(self, holder: str, response_ids: list[str], *, refund: bool) -> None:
        """Let go of jobs so that any process may claim them at once; `refund` uncounts the attempt."""
        ...

    async def finish(self, holder: str, response_id: str) -> None:
        """Delete a job `holder` holds: its response's final state is stored."""
        ...

    async def cancel(self, response_id: str, owner: str, *, holder: str, lease_seconds: float) -> CancelOutcome:
        """Ask for a job to be cancelled.

        `taken`: nobody was running it, and now `holder` holds it (to store it cancelled, then finish it);
        `requested`: its holder will see the request when it next renews its lease; `absent`: no such job.
        """
        ...
