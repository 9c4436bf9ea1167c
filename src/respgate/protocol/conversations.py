"""The Conversations API request bodies (reference §1), validated once at the edge."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from respgate.protocol.items import InputItem
from respgate.protocol.request import Metadata

# OpenAI takes at most 20 items per call, on create and on append.
MAX_ITEMS_PER_CALL = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateConversation(_Strict):
    items: Annotated[list[InputItem], Field(max_length=MAX_ITEMS_PER_CALL)] | None = None
    metadata: Metadata | None = None


class UpdateConversation(_Strict):
    # Required, as in the SDK's `conversations.update(metadata=...)`; null clears it.
    metadata: Metadata | None


class AddConversationItems(_Strict):
    items: Annotated[list[InputItem], Field(min_length=1, max_length=MAX_ITEMS_PER_CALL)]
