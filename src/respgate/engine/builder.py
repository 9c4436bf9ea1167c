"""The one event builder: neutral deltas in, Responses stream events out (reference §6.3/§6.4).

It is the only place that sets item ids, `output_index` and `sequence_number`. Items are serialised:
each item's added…done block ends before the next begins. Function calls are held until complete and
checked against their schema, so a client never sees arguments that will not validate.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, get_args

from openai.types.responses import ResponseError

from respgate.engine import events
from respgate.engine.events import Event, PartKind
from respgate.engine.fold import ResponseFold
from respgate.engine.tools import check_arguments, check_output_text
from respgate.protocol.errors import APIError, GenerationFailed
from respgate.protocol.ids import new_call_id, new_id
from respgate.providers.base import (
    Delta,
    Finish,
    FinishReason,
    FunctionSpec,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)

log = logging.getLogger(__name__)

# `Response.error.code` is an enum in the SDK's types; a code outside it (ours, like
# `invalid_tool_arguments`) is reported as `server_error`, its detail kept in the message. The one
# exception is `store_error`: the answer was made but could not be kept, which a client must be able to
# tell from a failed generation (the SDK builds stream events without validating them).
_RESPONSE_ERROR_CODES = frozenset(get_args(ResponseError.model_fields["code"].annotation)) | {"store_error"}


# The terminal event of a response in each status; a cancelled response has none.
_TERMINAL = {"completed": "completed", "incomplete": "incomplete", "failed": "failed"}


@dataclass(slots=True)
class _PendingCall:
    name: str | None = None
    chunks: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _OpenItem:
    """The item currently streaming: a message (text/refusal parts) or a reasoning item."""

    kind: str
    item_id: str
    output_index: int
    part_kind: PartKind | None = None
    part_index: int = -1
    chunks: list[str] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    encrypted_content: str | None = None


class EventBuilder:
    def __init__(
        self,
        response: dict[str, Any],
        *,
        tools: list[FunctionSpec],
        allowed_tools: frozenset[str] | None = None,
        max_calls: int | None = None,
        text_format: dict[str, Any] | None = None,
        obfuscate: bool = True,
        include_encrypted_reasoning: bool = False,
        keep_events: bool = True,
    ) -> None:
        """`keep_events`: keep every event in `events` (for a response whose events are stored); without
        it a long answer's events are dropped as soon as they are sent, and `events` stays empty."""
        self._response = response
        self._tools = {tool.name: tool for tool in tools}
        self._allowed = allowed_tools
        self._max_calls = max_calls
        self._text_format = text_format
        self._obfuscate = obfuscate
        self._include_encrypted = include_encrypted_reasoning
        self._sequence = 0
        self._rng = random.Random(secrets.token_bytes(16))
        self._pad = secrets.token_urlsafe(36)
        self._next_index = 0
        self._open: _OpenItem | None = None
        self._pending: dict[int, _PendingCall] = {}
        self._calls_emitted = 0
        self._message_texts: list[str] = []
        self._usage = Usage(0, 0)
        self._finish: FinishReason = "stop"
        self._fold = ResponseFold()
        self._keep_events = keep_events
        self.events: list[Event] = []
        self._last: Event | None = None
        # Every reasoning item's opaque blob, shown or not: the store keeps them for the next turn.
        self.reasoning_blobs: dict[str, str] = {}
        self.final: dict[str, Any] | None = None

    # -- stamping: the one place sequence numbers are set -------------------------------------------------

    def _emit(self, out: list[Event], event: Event) -> None:
        event["sequence_number"] = self._sequence
        self._sequence += 1
        self._fold.apply(event)
        if self._keep_events:
            self.events.append(event)
        self._last = event
        out.append(event)

    def _noise(self, event: Event) -> Event:
        # The padding hides each delta's length on the wire; only its length must be unpredictable, so
        # a generator seeded from the OS per response is enough (a CSPRNG per token cost ~10 µs).
        if self._obfuscate:
            bits = self._rng.getrandbits(9)
            start, length = bits >> 4, 2 + (bits & 15)
            event["obfuscation"] = self._pad[start : start + length]
        return event

    def _snapshot(self) -> dict[str, Any]:
        return {**self._response, "output": []}

    @classmethod
    def replay(cls, response: dict[str, Any], *, obfuscate: bool = True) -> list[Event]:
        """The stream of a stored response that kept no events, synthesised from the response itself:
        the opening, each output item as one block (one delta per part, or for the arguments), and the
        terminal event for its status."""
        opening = {
            **response,
            "status": "in_progress",
            "completed_at": None,
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }
        builder = cls(opening, tools=[], obfuscate=obfuscate)
        out = builder.opening()
        for index, item in enumerate(response.get("output") or []):
            for event in events.item_events(index, item):
                builder._emit(out, builder._noise(event) if event["type"].endswith(".delta") else event)
        if (kind := _TERMINAL.get(response["status"])) is not None:
            builder._emit(out, events.lifecycle(kind, response))
        return out

    # -- lifecycle ----------------------------------------------------------------------------------------

    def opening(self, *, queued: bool = False) -> list[Event]:
        """`response.created` (then `response.queued` for background work) and `response.in_progress`."""
        out: list[Event] = []
        if queued:
            waiting = {**self._snapshot(), "status": "queued"}
            self._emit(out, events.lifecycle("created", waiting))
            self._emit(out, events.lifecycle("queued", waiting))
        else:
            self._emit(out, events.lifecycle("created", self._snapshot()))
        self._emit(out, events.lifecycle("in_progress", self._snapshot()))
        return out

    def feed(self, delta: Delta) -> list[Event]:
        out: list[Event] = []
        match delta:
            case TextDelta(text=text):
                if text:
                    self._text(out, "output_text", text)
            case RefusalDelta(text=text):
                if text:
                    self._text(out, "refusal", text)
            case ReasoningDelta():
                self._reasoning(out, delta)
            case ToolCallDelta(index=index, name=name, arguments=arguments):
                pending = self._pending.setdefault(index, _PendingCall())
                if name and not pending.name:
                    pending.name = name
                if arguments:
                    pending.chunks.append(arguments)
            case ToolCallEnd(index=index):
                if index in self._pending:
                    self._flush_call(out, index)
            case Usage():
                self._usage = delta
            case Finish(reason=reason):
                self._finish = reason
        return out

    def finish(self) -> list[Event]:
        """Close what is open, release the remaining calls, and emit the terminal event."""
        out: list[Event] = []
        if self._text_format is not None and self._finish != "length":
            # A cut-off answer is reported as incomplete; a complete one must keep its promise of JSON.
            check_output_text(self._text_format, self._text_so_far())
        self._close_open(out, status="incomplete" if self._finish == "length" else "completed")
        if self._finish == "length":
            # Calls cut off by the token limit are unfinished; the terminal event says why they are absent.
            self._pending.clear()
        for index in self._pending:
            self._check_call(self._pending[index])
        for index in list(self._pending):
            self._flush_call(out, index)
        response = self._terminal_response()
        if self._finish == "stop":
            response.update(status="completed", completed_at=int(time.time()))
            kind = "completed"
        else:
            reason = "max_output_tokens" if self._finish == "length" else "content_filter"
            response.update(status="incomplete", incomplete_details={"reason": reason})
            kind = "incomplete"
        self.final = response
        self._emit(out, events.lifecycle(kind, response))
        return out

    def fail(self, error: APIError) -> list[Event]:
        """End with `response.failed`: open items are closed as incomplete, unreleased calls dropped."""
        out: list[Event] = []
        response = self._abandon(out)
        code = error.code if error.code in _RESPONSE_ERROR_CODES else "server_error"
        response.update(status="failed", error={"code": code, "message": error.message})
        self.final = response
        self._emit(out, events.lifecycle("failed", response))
        return out

    def retract(self, error: APIError) -> list[Event]:
        """`response.failed` with `error` in place of the terminal event just built, which was not sent.

        For an answer that could not be kept: it is stored before its terminal event goes out.
        """
        terminal = self._last
        assert terminal is not None
        assert terminal["type"] in ("response.completed", "response.incomplete", "response.failed"), terminal
        if self._keep_events:
            self.events.pop()
        self._sequence -= 1
        return self.fail(error)

    def reset_pending(self) -> None:
        """Forget unreleased calls and the finish reason, before the model is asked again."""
        self._pending.clear()
        self._finish = "stop"
        self._usage = Usage(0, 0)

    def interrupt(self, reason: str) -> dict[str, Any]:
        """The response as it stands when the client went away.

        Nobody is listening, so the closing events are not sent; they are recorded all the same,
        terminal event included, so that a `GET ?stream=true` replay is a whole stream.
        """
        sink: list[Event] = []
        response = self._abandon(sink)
        response.update(status="incomplete", incomplete_details={"reason": reason})
        self.final = response
        self._emit(sink, events.lifecycle("incomplete", response))
        return response

    def cancel(self) -> list[Event]:
        """A background response cancelled on request: what was produced is kept, usage is dropped.

        The Responses API has no `response.cancelled` event; followers see the open items closed and
        the stream end, and the stored response says `cancelled`.
        """
        out: list[Event] = []
        self.final = {**self._abandon(out), "status": "cancelled", "usage": None}
        return out

    def _abandon(self, out: list[Event]) -> dict[str, Any]:
        """Stop where the answer stands: open items closed as incomplete, unreleased calls dropped."""
        self._close_open(out, status="incomplete")
        self._pending.clear()
        return self._terminal_response()

    def _text_so_far(self) -> str:
        texts = list(self._message_texts)
        if self._open is not None and self._open.part_kind == "output_text":
            texts.append("".join(self._open.chunks))
        return "".join(texts)

    @property
    def emitted_output(self) -> bool:
        return self._next_index > 0

    def _terminal_response(self) -> dict[str, Any]:
        return {**self._response, "output": self._fold.output(), "usage": events.usage_body(self._usage)}

    # -- items ----------------------------------------------------------------------------------------------

    def _open_item(self, out: list[Event], kind: str, prefix: str, item: dict[str, Any]) -> _OpenItem:
        self._close_open(out, status="completed")
        opened = _OpenItem(kind=kind, item_id=new_id(prefix), output_index=self._next_index)
        self._next_index += 1
        self._open = opened
        self._emit(out, events.item_added(opened.output_index, {"id": opened.item_id, **item}))
        return opened

    def _part_text(self, out: list[Event], opened: _OpenItem, kind: PartKind, text: str) -> None:
        """Append `text` to the open item's part of `kind`, opening that part first if needed."""
        if opened.part_kind != kind:
            self._close_part(out, opened)
            opened.part_kind = kind
            # Summary parts and content parts are numbered separately.
            opened.part_index = sum(
                1 for part in opened.parts if (part["type"] == "summary_text") == (kind == "summary")
            )
            self._emit(out, events.part_added(opened.item_id, opened.output_index, kind, opened.part_index))
        opened.chunks.append(text)
        delta = events.part_delta(opened.item_id, opened.output_index, kind, opened.part_index, text)
        self._emit(out, self._noise(delta))

    def _text(self, out: list[Event], kind: PartKind, text: str) -> None:
        opened = self._open
        if opened is None or opened.kind != "message":
            empty = {"type": "message", "status": "in_progress", "content": [], "role": "assistant"}
            opened = self._open_item(out, "message", "msg", empty)
        self._part_text(out, opened, kind, text)

    def _reasoning(self, out: list[Event], delta: ReasoningDelta) -> None:
        opened = self._open
        if opened is None or opened.kind != "reasoning":
            opened = self._open_item(out, "reasoning", "rs", {"type": "reasoning", "summary": []})
        if delta.encrypted_content:
            opened.encrypted_content = delta.encrypted_content
            self.reasoning_blobs[opened.item_id] = delta.encrypted_content
        if delta.text:
            self._part_text(out, opened, "summary" if delta.kind == "summary" else "reasoning_text", delta.text)

    def _close_part(self, out: list[Event], opened: _OpenItem) -> None:
        kind = opened.part_kind
        if kind is None:
            return
        full = "".join(opened.chunks)
        opened.chunks = []
        if kind == "output_text":
            self._message_texts.append(full)
        for event in events.part_done(opened.item_id, opened.output_index, kind, opened.part_index, full):
            self._emit(out, event)
        opened.parts.append(events.full_part(kind, full))
        opened.part_kind = None

    def _close_open(self, out: list[Event], *, status: str) -> None:
        opened = self._open
        if opened is None:
            return
        self._open = None
        self._close_part(out, opened)
        if opened.kind == "message":
            item = events.message_item(opened.item_id, status, opened.parts)
        else:
            shown = opened.encrypted_content if self._include_encrypted else None
            item = events.reasoning_item(opened.item_id, opened.parts, shown)
        self._emit(out, events.item_done(opened.output_index, item))

    def _check_call(self, pending: _PendingCall) -> tuple[FunctionSpec, str]:
        spec = self._tools.get(pending.name or "")
        if spec is None or (self._allowed is not None and spec.name not in self._allowed):
            raise GenerationFailed(
                f"The model called a tool that is not available: '{pending.name}'.", code="invalid_tool_call"
            )
        arguments = "".join(pending.chunks) or "{}"
        check_arguments(spec, arguments)
        return spec, arguments

    def _flush_call(self, out: list[Event], index: int) -> None:
        spec, arguments = self._check_call(self._pending[index])
        pending = self._pending.pop(index)
        if self._max_calls is not None and self._calls_emitted >= self._max_calls:
            log.info("dropping call to %s beyond the limit of %d call(s)", spec.name, self._max_calls)
            return
        self._calls_emitted += 1
        self._close_open(out, status="completed")
        item_id, call_id = new_id("fc"), new_call_id()
        output_index = self._next_index
        self._next_index += 1
        name, namespace = spec.wire_name, spec.namespace
        added = events.function_call_item(
            item_id, call_id, name, arguments="", status="in_progress", namespace=namespace
        )
        self._emit(out, events.item_added(output_index, added))
        for chunk in pending.chunks or [arguments]:
            self._emit(out, self._noise(events.arguments_delta(item_id, output_index, chunk)))
        self._emit(out, events.arguments_done(item_id, output_index, name, arguments))
        done = events.function_call_item(
            item_id, call_id, name, arguments=arguments, status="completed", namespace=namespace
        )
        self._emit(out, events.item_done(output_index, done))
