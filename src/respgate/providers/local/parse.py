"""Reading the model's output as it streams: prose versus an attempted call, and `<tool_call>` blocks."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from respgate.providers.base import ToolCallDelta, ToolCallEnd

# "call": a call to a known tool; "answer": call-shaped JSON naming no known tool (the model wants
# to answer, in the wrong form); "text": prose.
Intent = Literal["call", "answer", "text", "undecided"]

_CALL_OPEN = "<tool_call>"
_CALL_CLOSE = "</tool_call>"
# The ways small models start a call unprompted: tagged, fenced (```json), bare, or in a list.
_OPENERS = ("<tool_call>", "```json", "```", "")
_HEADS = tuple(
    opener + bracket + key
    for opener in _OPENERS
    for bracket in ("[", "")
    for key in ('{"name":"', '{"function":"', '{"tool":"')
)
_MARKER_STARTS = "`<{["


def classify_block(text: str, tool_names: Collection[str]) -> Intent:
    """Whether `text` (the start of a line onwards) is a call, and to one of `tool_names`."""
    squeezed = re.sub(r"\s+", "", text)
    lowered = squeezed.lower()
    for head in _HEADS:
        if head.startswith(lowered):
            return "undecided"
        if lowered.startswith(head):
            rest = squeezed[len(head) :]
            end = rest.find('"')
            if end >= 0:
                return "call" if rest[:end] in tool_names else "answer"
            return "undecided"
    return "text"


@dataclass(slots=True)
class CallIntentDetector:
    """Passes prose through at once, holding back only a line that might be starting a call.

    `feed` returns the text that is safe to show; `intent` turns to "call" or "answer" as soon
    as a held block is call-shaped JSON (the caller then stops this pass).
    """

    tool_names: Collection[str]
    intent: Intent = "undecided"
    _pending: str = ""
    _line_is_prose: bool = False

    def feed(self, chunk: str) -> str:
        self._pending += chunk
        released: list[str] = []
        while self._pending and self.intent not in ("call", "answer"):
            if self._line_is_prose:
                newline = self._pending.find("\n")
                if newline < 0:
                    released.append(self._pending)
                    self._pending = ""
                    break
                released.append(self._pending[: newline + 1])
                self._pending = self._pending[newline + 1 :]
                self._line_is_prose = False
                continue
            stripped = self._pending.lstrip()
            if not stripped:
                break
            if stripped[0] not in _MARKER_STARTS:
                self._line_is_prose = True
                continue
            verdict = classify_block(self._pending, self.tool_names)
            if verdict in ("call", "answer"):
                self.intent = verdict
            elif verdict == "text":
                self._line_is_prose = True
            else:
                break
        return "".join(released)

    def flush(self) -> str:
        """The text still held back when the pass ended without a call."""
        rest, self._pending = self._pending, ""
        return rest if self.intent not in ("call", "answer") else ""


@dataclass(slots=True)
class _OpenCall:
    index: int
    name: str | None = None
    arguments: str = ""
    announced: bool = False
    depth: int = 0
    in_string: bool = False
    escaped: bool = False
    complete: bool = False


@dataclass(slots=True)
class ToolCallParser:
    """Turns grammar-forced `<tool_call>` blocks into call deltas, with compact argument JSON.

    Identical (name, arguments) pairs are dropped: a repeat is held back until it differs from
    every earlier call of that name, and an exact repeat (a looping model) sets `should_stop`.
    `should_stop` is also set once `max_calls` calls are complete.
    """

    max_calls: int
    first_index: int = 0
    # Calls already made (and answered) in this exchange: repeating one is a loop, not an answer.
    seen: Collection[tuple[str, str]] = ()
    should_stop: bool = False
    done: list[tuple[str, str]] = field(default_factory=list)
    _buffer: str = ""
    _call: _OpenCall | None = None
    _prefix: str = ""  # the object text before the arguments value

    _NAME = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')

    def feed(self, chunk: str) -> list[ToolCallDelta | ToolCallEnd]:
        self._buffer += chunk
        out: list[ToolCallDelta | ToolCallEnd] = []
        while not self.should_stop:
            call = self._call
            if call is None:
                start = self._buffer.find(_CALL_OPEN)
                if start < 0:
                    break
                self._buffer = self._buffer[start + len(_CALL_OPEN) :]
                self._call = _OpenCall(index=self.first_index + len(self.done))
                self._prefix = ""
            elif call.name is None:
                self._prefix += self._buffer
                self._buffer = ""
                match = self._NAME.match(self._prefix)
                if match is None:
                    break
                call.name = json.loads(f'"{match.group(1)}"')
                self._buffer = self._prefix[match.end() :]
                if not any(name == call.name for name, _ in self._earlier()):
                    call.announced = True
                    out.append(ToolCallDelta(call.index, name=call.name))
            elif not call.complete:
                self._buffer = self._read_arguments(call, out)
                if not call.complete:
                    break
            else:
                close = self._buffer.find(_CALL_CLOSE)
                if close < 0:
                    break
                self._buffer = self._buffer[close + len(_CALL_CLOSE) :]
                out.extend(self._close(call))
        return out

    def _read_arguments(self, call: _OpenCall, out: list[ToolCallDelta | ToolCallEnd]) -> str:
        """Consume argument characters, dropping whitespace outside strings; return the rest."""
        piece: list[str] = []
        consumed = 0
        for char in self._buffer:
            consumed += 1
            if call.in_string:
                piece.append(char)
                if call.escaped:
                    call.escaped = False
                elif char == "\\":
                    call.escaped = True
                elif char == '"':
                    call.in_string = False
            elif char.isspace():
                continue
            else:
                piece.append(char)
                if char == '"':
                    call.in_string = True
                elif char in "{[":
                    call.depth += 1
                elif char in "}]":
                    call.depth -= 1
                    if call.depth == 0:
                        call.complete = True
                        break
        text = "".join(piece)
        call.arguments += text
        if call.announced:
            if text:
                out.append(ToolCallDelta(call.index, arguments=text))
        elif not self._could_repeat(call):
            call.announced = True
            assert call.name is not None
            out.append(ToolCallDelta(call.index, name=call.name, arguments=call.arguments))
        return self._buffer[consumed:]

    def _earlier(self) -> list[tuple[str, str]]:
        return [*self.seen, *self.done]

    def _could_repeat(self, call: _OpenCall) -> bool:
        return any(name == call.name and args.startswith(call.arguments) for name, args in self._earlier())

    def _close(self, call: _OpenCall) -> list[ToolCallDelta | ToolCallEnd]:
        self._call = None
        assert call.name is not None
        if not call.announced:
            # Everything so far matched an earlier call exactly: the model is looping.
            self.should_stop = True
            return []
        self.done.append((call.name, call.arguments))
        if len(self.done) >= self.max_calls:
            self.should_stop = True
        return [ToolCallEnd(call.index)]

    def finish(self) -> list[ToolCallDelta | ToolCallEnd]:
        """At the end of generation: a call whose arguments are complete is closed."""
        call = self._call
        if call is not None and call.complete and call.announced and not self.should_stop:
            return self._close(call)
        return []

    @property
    def open_call(self) -> bool:
        """A call was announced but never completed (generation was cut short)."""
        return self._call is not None and self._call.announced
