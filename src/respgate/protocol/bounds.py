"""Bounds on a request body's size and shape, checked right after parsing and before validation.

The counts are checked first (a glance each), so a body of 10,000 tools is refused before anything
walks it; then one iterative walk checks nesting, string lengths and numbers. Messages and codes are
OpenAI's (`array_above_max_length`, `string_above_max_length`).
"""

from __future__ import annotations

import math
from typing import Any

from respgate.protocol.errors import InvalidRequest

# Fields that carry inline data (data: URLs, base64 files): bounded by the body size alone.
_DATA_FIELDS = frozenset({"image_url", "file_data"})
# orjson writes integers of up to 64 bits (unsigned above zero); larger ones cannot be stored.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# Keys of the request's own structure: an error names the path through them down to the first
# field below them (`input[0].extra`, `tools[2].tools[1].parameters`, `text.format.schema`).
_STRUCTURE = frozenset({"input", "items", "tools", "content", "text", "format"})


def array_too_long(param: str, limit: int, length: int) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': array too long. Expected an array with maximum length {limit}, but got an "
        f"array with length {length} instead.",
        param=param,
        code="array_above_max_length",
    )


def check_counts(
    body: dict[str, Any], *, max_tools: int, max_functions: int, max_input_items: int, items_key: str = "input"
) -> None:
    """Refuse too many tools, functions or input items: a glance at each array's length."""
    items = body.get(items_key)
    if isinstance(items, list) and len(items) > max_input_items:
        raise array_too_long(items_key, max_input_items, len(items))
    tools = body.get("tools")
    if not isinstance(tools, list):
        return
    if len(tools) > max_tools:
        raise array_too_long("tools", max_tools, len(tools))
    functions = 0
    for index, tool in enumerate(tools):
        inner = tool.get("tools") if isinstance(tool, dict) else None
        if isinstance(inner, list):
            if len(inner) > max_tools:
                raise array_too_long(f"tools[{index}].tools", max_tools, len(inner))
            functions += len(inner)
        else:
            functions += 1
    if functions > max_functions:
        raise InvalidRequest(
            f"Invalid 'tools': too many functions. Expected at most {max_functions} functions in all "
            f"(namespaces included), but got {functions} instead.",
            param="tools",
            code="array_above_max_length",
        )


def _param(path: tuple[str | int, ...]) -> str:
    text = ""
    for segment in path:
        text += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if text else segment)
        if isinstance(segment, str) and segment not in _STRUCTURE:
            break
    return text


def check_shape(body: Any, *, max_depth: int, max_string_chars: int) -> None:
    """Refuse nesting deeper than `max_depth`, over-long strings and numbers no JSON writer can write.

    One iterative pass (no recursion, whatever the depth); the error names where the problem is.
    """
    if type(body) is not dict and type(body) is not list:
        return
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(body, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        pairs = node.items() if type(node) is dict else enumerate(node)
        for key, value in pairs:
            kind = type(value)
            if kind is dict or kind is list:
                if depth >= max_depth:
                    raise too_deep(_param((*path, key)), max_depth)
                if value:
                    stack.append((value, depth + 1, (*path, key)))
            elif kind is str:
                if len(value) > max_string_chars and key not in _DATA_FIELDS:
                    param = _param((*path, key))
                    raise InvalidRequest(
                        f"Invalid '{param}': string too long. Expected a string with maximum length "
                        f"{max_string_chars}, but got a string with length {len(value)} instead.",
                        param=param,
                        code="string_above_max_length",
                    )
            elif kind is float:
                if not math.isfinite(value):
                    raise _bad_number(_param((*path, key)))
            elif kind is int and not _INT_MIN <= value <= _INT_MAX:
                raise _bad_number(_param((*path, key)))


def too_deep(param: str, max_depth: int) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': nesting too deep. Expected at most {max_depth} levels of nesting in the "
        "request body.",
        param=param,
        code="invalid_value",
    )


def _bad_number(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{param}': number out of range. Expected a finite number that fits in 64 bits.",
        param=param,
        code="invalid_value",
    )
