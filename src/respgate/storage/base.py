"""The store contract used by the engine and the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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


class ResponseStore(Protocol):
    async def save(self, record: StoredResponse, events: list[dict[str, Any]] | None = None) -> None:
        """Insert or replace a response (and, if given, its streamed events) in one transaction."""
        ...

    async def get(self, response_id: str, owner: str) -> StoredResponse | None: ...

    async def chain(self, response_id: str, owner: str) -> list[StoredResponse]:
        """`response_id` and all its ancestors through `previous_response_id`, oldest first; [] if unknown."""
        ...

    async def events(self, response_id: str, owner: str) -> list[dict[str, Any]] | None:
        """The events streamed for a response, in order (for `GET ?stream=true` replay)."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool: ...

    async def aclose(self) -> None: ...
