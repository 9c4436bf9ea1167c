"""The provider contract: what the engine asks of a model, and the neutral deltas a model yields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ToolMode = Literal["none", "auto", "required"]
FinishReason = Literal["stop", "length", "content_filter"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSpec:
    """A function tool as the model sees it; `parameters` is already normalised (strict when `strict`)."""

    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool
    # A function of a `namespace` tool: `name` is then the unique name the model sees
    # (`<namespace>__<function>`), and a call goes back to the client as `function` in `namespace`.
    namespace: str | None = None
    function: str | None = None

    @property
    def wire_name(self) -> str:
        """The function's own name, as the client declared it."""
        return self.function or self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCall:
    """One generation request, provider-neutral.

    `items` is the whole context in Responses item form, normalised: every message has `type`,
    `role` and a list `content` of typed parts (`input_text`/`input_image`/`input_file` for
    user/system/developer, `output_text`/`refusal` for assistant); item references are resolved.
    `allowed_tools` narrows which of `tools` may be called (named choice or `allowed_tools`);
    `None` means all of them.
    """

    model: str
    upstream_model: str
    items: list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FunctionSpec] = field(default_factory=list)
    tool_choice: ToolMode = "auto"
    allowed_tools: frozenset[str] | None = None
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    include_encrypted_reasoning: bool = False
    truncation: Literal["auto", "disabled"] = "disabled"
    user: str | None = None

    def callable_tools(self) -> list[FunctionSpec]:
        """The tools the model may call under `tool_choice` / `allowed_tools`."""
        if self.tool_choice == "none":
            return []
        if self.allowed_tools is None:
            return list(self.tools)
        return [tool for tool in self.tools if tool.name in self.allowed_tools]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning text (`summary` or raw `content`) and/or an opaque `encrypted_content` blob."""

    text: str = ""
    kind: Literal["summary", "content"] = "summary"
    encrypted_content: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of function call `index`: the first delta of an index carries `name`."""

    index: int
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    """Function call `index` is complete (providers that cannot tell simply never send it)."""

    index: int


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


Delta = TextDelta | RefusalDelta | ReasoningDelta | ToolCallDelta | ToolCallEnd | Usage | Finish


class Provider(Protocol):
    """A model backend. Raise `respgate.protocol.errors.APIError` subclasses, never foreign errors."""

    def stream(self, call: ModelCall) -> AsyncIterator[Delta]: ...


@runtime_checkable
class ManagedProvider(Protocol):
    """A provider that owns resources (a subprocess, a connection pool) for the server's lifetime."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can count a call's input tokens without generating (`POST /v1/responses/input_tokens`).

    Optional: for a provider without it the engine estimates the count instead.
    """

    async def count_tokens(self, call: ModelCall) -> int: ...
