"""A scripted model: plays back configured turns through the real engine. For tests and client developers.

```yaml
models:
  - name: gpt-4.1
    provider: scripted
    delay: 0.0            # seconds between tokens
    script:               # turn N answers a context that already holds N assistant turns
      - tool_calls: [{name: current_time, arguments: {}}]
      - text: "It is noon."
```
A turn may hold `text`, `refusal`, `reasoning`, `tool_calls`, `echo: true` (repeat the last user text),
`error: {status, message}` (fail before the first token) or `fail_after: N` (fail after N tokens).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from respgate.config import ModelEntry
from respgate.protocol.errors import InvalidRequest, RateLimited, UpstreamError
from respgate.providers.base import (
    Delta,
    Finish,
    ModelCall,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)

_TOKEN = re.compile(r"\s*[^\s]{1,4}|\s+")


class ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ScriptedError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: int = 500
    message: str = "The scripted upstream failed."


class ScriptedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    echo: bool = False
    error: ScriptedError | None = None
    fail_after: int | None = Field(default=None, ge=0)
    delay: float | None = Field(default=None, ge=0)


class ScriptedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    script: list[ScriptedTurn] = Field(default_factory=lambda: [ScriptedTurn(echo=True)])
    delay: float = Field(default=0.0, ge=0)


def assistant_turns(items: list[dict[str, Any]]) -> int:
    """How many runs of consecutive assistant items (messages, calls, reasoning) the context holds."""
    turns, inside = 0, False
    for item in items:
        kind = item.get("type")
        is_assistant = kind in ("function_call", "reasoning") or (
            kind == "message" and item.get("role") == "assistant"
        )
        if is_assistant and not inside:
            turns += 1
        inside = is_assistant
    return turns


def _last_user_text(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user":
            return "".join(
                part.get("text", "") for part in item.get("content", []) if part.get("type") == "input_text"
            )
    return ""


def _lazy_tokens(text: str) -> Iterator[str]:
    """Token-sized pieces of `text` (words of up to four characters, with their leading space)."""
    return (match.group() for match in _TOKEN.finditer(text))


def _pieces(turn: ScriptedTurn, call: ModelCall) -> Iterator[Delta]:
    """The turn's deltas, made one at a time: a long echo is never built up front."""
    if turn.reasoning:
        yield from (ReasoningDelta(text=piece) for piece in _lazy_tokens(turn.reasoning))
    if turn.refusal:
        yield from (RefusalDelta(piece) for piece in _lazy_tokens(turn.refusal))
    text = _last_user_text(call.items) if turn.echo else turn.text
    if text:
        yield from (TextDelta(piece) for piece in _lazy_tokens(text))
    calls = [] if call.tool_choice == "none" else turn.tool_calls
    for index, scripted in enumerate(calls):
        arguments = scripted.arguments
        encoded = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        chunks = [encoded[start : start + 8] for start in range(0, len(encoded), 8)] or [""]
        yield ToolCallDelta(index, name=scripted.name, arguments=chunks[0])
        yield from (ToolCallDelta(index, arguments=chunk) for chunk in chunks[1:])
        yield ToolCallEnd(index)


def _fail(error: ScriptedError) -> Exception:
    if error.status == 429:
        return RateLimited(error.message, code="rate_limit_exceeded")
    if 400 <= error.status < 500:
        return InvalidRequest(f"Upstream rejected the request: {error.message}")
    return UpstreamError(error.message, upstream_status=error.status)


class ScriptedProvider:
    def __init__(self, entry: ModelEntry) -> None:
        self._settings = ScriptedSettings.model_validate(entry.provider_settings())

    async def count_tokens(self, call: ModelCall) -> int:
        """The input tokens this provider reports in its usage (a quarter of the context's JSON bytes)."""
        return max(1, len(orjson.dumps(call.items)) // 4 + len(call.instructions or "") // 4)

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        script = self._settings.script
        turn = script[min(assistant_turns(call.items), len(script) - 1)]
        if turn.error is not None:
            raise _fail(turn.error)
        delay = self._settings.delay if turn.delay is None else turn.delay
        budget = call.max_output_tokens
        produced = 0

        for piece in _pieces(turn, call):
            if turn.fail_after is not None and produced >= turn.fail_after:
                raise UpstreamError("The scripted upstream dropped the connection.", retryable=False)
            if budget is not None and produced >= budget and not isinstance(piece, ToolCallEnd):
                yield Usage(input_tokens=await self.count_tokens(call), output_tokens=produced)
                yield Finish("length")
                return
            if delay:
                await asyncio.sleep(delay)
            if not isinstance(piece, ToolCallEnd):
                produced += 1
            yield piece
        yield Usage(input_tokens=await self.count_tokens(call), output_tokens=produced, reasoning_tokens=0)
        yield Finish("stop")
