"""Time and upstream calls: how long each wait of one call may last, and when an upstream asks us back.

A call has two phases. Until its first delta, one deadline (`first_token`) covers everything: connecting,
the status line, headers, keep-alive comments and events that carry no content, so an upstream that
accepts and then says nothing useful is given up on like one that refuses. After the first delta, each
wait for the next event may last `read` seconds. Once the answer's finish has arrived, what may still
follow (a usage chunk, an end marker) is waited for only briefly: the answer is already whole.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field

# The longest wait for what follows an answer's finish: such a tail arrives at once or never.
_AFTER_FINISH = 2.0


class Timeouts(BaseModel):
    """Seconds, per deployment.

    `connect`: to open the connection. `first_token`: from sending the request to the first delta of
    the answer (a model that reasons unseen before answering needs more). `read`: after the first delta,
    the longest silence between two events.
    """

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(default=10.0, gt=0)
    first_token: float = Field(default=60.0, gt=0)
    read: float = Field(default=60.0, gt=0)


class StreamClock:
    """The deadlines of one upstream call, from the moment it is made."""

    def __init__(self, timeouts: Timeouts) -> None:
        self._timeouts = timeouts
        self._first_deadline = asyncio.get_running_loop().time() + timeouts.first_token

    def deadline(self, *, started: bool, finishing: bool = False) -> float:
        """When the current wait must end: `started` once a delta came, `finishing` once the finish did."""
        if not started:
            return self._first_deadline
        wait = min(self._timeouts.read, _AFTER_FINISH) if finishing else self._timeouts.read
        return asyncio.get_running_loop().time() + wait

    def expired(self, *, started: bool) -> str:
        """What ran out, for an error message."""
        if started:
            return f"sent nothing for {self._timeouts.read:g} s mid-answer (timeout.read)"
        return f"did not start answering within {self._timeouts.first_token:g} s (timeout.first_token)"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds an upstream asks to wait: `retry-after-ms`, else `Retry-After` (seconds or an HTTP date).

    `headers` has lower-case names.
    """
    if (millis := _number(headers.get("retry-after-ms"))) is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _number(value)) is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def retry_after_headers(headers: Mapping[str, str], seconds: float) -> dict[str, str]:
    """The headers that tell a client to wait `seconds`: `Retry-After` in whole seconds (rounded up), and
    `retry-after-ms` when the upstream gave that precision (`headers`: the upstream's, lower-case names)."""
    out = {"Retry-After": str(math.ceil(seconds))}
    if "retry-after-ms" in headers:
        out["retry-after-ms"] = str(round(seconds * 1000))
    return out


def try_again_in(seconds: float) -> str:
    """OpenAI's way of saying it in a 429 message ("1.5s", "446ms"), which clients such as Codex parse."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
