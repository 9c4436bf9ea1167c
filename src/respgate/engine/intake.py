"""Checking a request body before anything runs, and keeping that work from stalling other requests.

Bounds come first (array lengths: a glance), then one walk over the body (nesting, strings,
numbers), then validation: pydantic, tools and their schemas, the input normalised. Checking a large
body takes milliseconds of Python, so past `OFFLOAD_BYTES` it runs on a worker thread. That helps
because this is Python code (pydantic calls back into it, and so on), which lets the interpreter hand
the GIL back to the event loop every few milliseconds; parsing the JSON does not (jiter holds the GIL
throughout), so the parse stays on the loop where it costs the same and saves a thread hop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from respgate.config import Limits
from respgate.engine.context import normalize_input
from respgate.engine.tools import ResolvedTools, resolve_text_format, resolve_tools
from respgate.protocol.bounds import check_counts, check_shape
from respgate.protocol.errors import InvalidRequest
from respgate.protocol.request import CreateResponse
from respgate.protocol.validation import M, parse_model

# Below this many bytes the whole check takes well under a millisecond: a thread hop (~40 µs) would
# cost more than it saves (bench/stall.py measures the large cases).
OFFLOAD_BYTES = 64 * 1024
# The longest the event loop waits for a turn while one response streams a burst of deltas.
TURN_SECONDS = 0.005

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CheckedCreate:
    """A create (or input_tokens) body, validated: the request, its tools, text format and new items."""

    request: CreateResponse
    tools: ResolvedTools
    text_format: dict[str, Any] | None
    new_items: list[dict[str, Any]]


class Intake:
    """The request checks, configured once: `limits`, and what to do with unsupported tool types."""

    def __init__(self, *, limits: Limits, omit_unsupported_tools: bool = False) -> None:
        self._limits = limits
        self._omit_unsupported_tools = omit_unsupported_tools

    def bounds(self, body: Any, *, items_key: str = "input") -> dict[str, Any]:
        """The body as an object within every limit; a 400 naming the field otherwise."""
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
        limits = self._limits
        check_counts(
            body,
            max_tools=limits.max_tools,
            max_functions=limits.max_functions,
            max_input_items=limits.max_input_items,
            items_key=items_key,
        )
        check_shape(body, max_depth=limits.max_json_depth, max_string_chars=limits.max_string_chars)
        return body

    def create(self, body: Any) -> CheckedCreate:
        """Everything about a create body that needs no store: bounds, model, tools, text format, input."""
        request = parse_model(CreateResponse, self.bounds(body))
        tools = resolve_tools(request, limits=self._limits, omit_unsupported=self._omit_unsupported_tools)
        text_format = resolve_text_format(request, limits=self._limits)
        return CheckedCreate(
            request=request, tools=tools, text_format=text_format, new_items=normalize_input(request.input)
        )

    def model(self, model: type[M], body: Any, *, items_key: str = "input") -> M:
        """A body of another endpoint (conversations, input_tokens), within bounds and validated."""
        return parse_model(model, self.bounds(body, items_key=items_key))


async def checked(size: int, check: Callable[..., T], *args: Any) -> T:
    """`check(*args)`, on a worker thread when the body was `size` bytes, enough to be worth one."""
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(check, *args)
    return check(*args)


class LoopTurns:
    """Gives the event loop a turn when this task has run `TURN_SECONDS` without awaiting anything.

    A provider can hand over thousands of deltas without ever suspending (a replay, a fast local
    model); each costs microseconds, together they would hold every other request up.
    """

    def __init__(self) -> None:
        self._since = time.monotonic()

    async def give(self) -> None:
        now = time.monotonic()
        if now - self._since >= TURN_SECONDS:
            await asyncio.sleep(0)
            self._since = time.monotonic()
