"""What a fake upstream should answer, independent of its wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class FakeCall:
    """One function call the fake model makes; `arguments` is JSON text."""

    name: str
    arguments: str
    call_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A successful answer, rendered in the fake's wire format (streamed or not, as the request asks).

    `chunks` splits the text (and each call's arguments) into that many pieces; `interleave`
    alternates the argument pieces of different calls (Anthropic's format cannot, and ignores it);
    `disconnect_after` drops the connection after that many SSE events; `deltas=False` makes the
    Responses fake send only the complete `.done` events, as some servers do; `stream_error` ends the
    stream, after the content, with the provider's in-stream error instead of a normal finish.
    """

    text: str = ""
    chunks: int = 1
    refusal: str = ""
    reasoning: str = ""
    encrypted_reasoning: str | None = None
    calls: tuple[FakeCall, ...] = ()
    interleave: bool = False
    finish: Literal["stop", "length", "content_filter"] = "stop"
    input_tokens: int = 12
    output_tokens: int = 7
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    disconnect_after: int | None = None
    deltas: bool = True
    stream_error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Failure:
    """An HTTP error answer with the provider's documented error body.

    `code` is the body's error code where the format has one (a 429 says `rate_limit_exceeded` unless
    told otherwise, e.g. `insufficient_quota`); `headers` go out with it (`Retry-After`, `retry-after-ms`).
    """

    status: int
    message: str = "The fake upstream failed."
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Reply | Failure


def split(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` nearly equal, non-empty parts (fewer when the text is shorter)."""
    if not text:
        return []
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    parts, start = [], 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        parts.append(text[start:end])
        start = end
    return parts


def interleaved(groups: list[list[str]], *, alternate: bool) -> list[tuple[int, str]]:
    """`(group index, piece)` pairs: group by group, or round robin when `alternate`."""
    if not alternate:
        return [(index, piece) for index, group in enumerate(groups) for piece in group]
    order: list[tuple[int, str]] = []
    for depth in range(max((len(group) for group in groups), default=0)):
        order.extend((index, group[depth]) for index, group in enumerate(groups) if depth < len(group))
    return order
