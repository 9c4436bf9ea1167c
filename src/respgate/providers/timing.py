"""Time and upstream calls: how long each wait of one call may last.

A call has two phases. Until its first delta, one deadline (`first_token`) covers everything: connecting,
the status line, headers, keep-alive comments and events that carry no content, so an upstream that
accepts and then says nothing useful is given up on like one that refuses. After the first delta, each
wait for the next event may last `read` seconds. Once the answer's finish has arrived, what may still
follow (a usage chunk, an end marker) is waited for only briefly: the answer is already whole.
"""

from __future__ import annotations

import asyncio

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
