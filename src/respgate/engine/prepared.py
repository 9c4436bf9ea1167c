"""A create request once validated and given its context: what the engine runs and the store keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from respgate.engine.tools import ResolvedTools
from respgate.protocol.request import CreateResponse
from respgate.providers.base import ModelCall


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A validated request with its context, ready to run."""

    request: CreateResponse
    owner: str
    response_id: str
    created_at: int
    model: str
    input_items: list[dict[str, Any]]
    tools: ResolvedTools
    call: ModelCall
    # The conversation the request continues: its items came first in the context, and the
    # response's input and output are appended to it when the response ends.
    conversation_id: str | None = None

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)

    @property
    def store(self) -> bool:
        return self.request.store is not False

    @property
    def background(self) -> bool:
        return bool(self.request.background)
