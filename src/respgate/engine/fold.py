"""The fold: streamed events in, the Response they describe out. The non-streaming answer is this fold."""

from __future__ import annotations

from typing import Any


class ResponseFold:
    """Accumulates output items from `output_item.added` / `.done` events.

    The builder guarantees that every added item is done before the terminal event, and a done event
    carries the item's final form, so deltas need not be replayed here.
    """

    def __init__(self) -> None:
        self._output: list[dict[str, Any] | None] = []

    def apply(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "response.output_item.added":
            index = event["output_index"]
            if index != len(self._output):
                raise AssertionError(f"output_index {index} is not contiguous")
            self._output.append(None)
        elif kind == "response.output_item.done":
            self._output[event["output_index"]] = event["item"]

    def output(self) -> list[dict[str, Any]]:
        if any(item is None for item in self._output):
            raise AssertionError("an output item was added but never done")
        return [item for item in self._output if item is not None]
