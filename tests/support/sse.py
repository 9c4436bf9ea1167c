"""Reading a `text/event-stream` body the way a strict client would."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ParsedStream:
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def parse_sse(lines: Iterable[str]) -> ParsedStream:
    """Events (the JSON of each `data:`) and comment lines; fails on anything a client would choke on.

    Each event must have exactly one `data:` line holding JSON, and its `event:` line (if any) must
    name the same type as the JSON; `data: [DONE]` is not part of the Responses API.
    """
    parsed = ParsedStream()
    name: str | None = None
    data: list[str] = []

    def flush() -> None:
        nonlocal name, data
        if data:
            assert len(data) == 1, f"an event with {len(data)} data lines"
            assert data[0] != "[DONE]", "the Responses API has no [DONE] terminator"
            event = json.loads(data[0])
            assert isinstance(event, dict) and "type" in event, event
            if name is not None:
                assert name == event["type"], f"event: {name} carries data of type {event['type']}"
            parsed.events.append(event)
        else:
            assert name is None, f"event: {name} without data"
        name, data = None, []

    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            flush()
        elif line.startswith(":"):
            parsed.comments.append(line)
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
        else:
            raise AssertionError(f"unexpected SSE line {line!r}")
    flush()
    return parsed


def parse_sse_text(text: str) -> ParsedStream:
    return parse_sse(text.split("\n"))
