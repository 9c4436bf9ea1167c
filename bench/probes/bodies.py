"""Hand-made hostile request bodies: odd item types, deep nesting everywhere a client can nest, odd numbers.

Every body carries `MARK` in its user text so that a log line quoting user content can be found.
Depths are the whole body's JSON nesting depth (containers), so 1023 and 1024 sit at the parser's limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

MARK = "probe-user-content-7f3a"
DEPTHS = (254, 500, 1023, 1024)
HOLE = "__HOLE__"

Expect = Literal["not-5xx", "2xx", "4xx"]


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str  # responses, input_tokens, conversations, items
    body: bytes
    expect: Expect = "not-5xx"

    @property
    def group(self) -> str:
        if ", depth " in self.name:
            return "nesting"
        if "type " in self.name:
            return "types"
        return "values"

    @property
    def shape(self) -> str:
        """The case without its depth: what a group of nesting cases has in common."""
        return self.name.split(", depth ")[0]


def nest(levels: int, kind: str = "array") -> str:
    """JSON text of `levels` nested arrays (or objects) around a 1 (built as text: too deep for json.dumps)."""
    if kind == "array":
        return "[" * levels + "1" + "]" * levels
    return '{"a": ' * levels + "1" + "}" * levels


def deep_schema(levels: int) -> str:
    """JSON text of a schema nested through `properties` (two containers per level), `levels` deep."""
    pairs = (levels - 1) // 2
    head = '{"type": "object", "properties": {"a": ' * pairs
    pad = "" if (levels - 1) % 2 == 0 else '{"type": "array", "items": '
    tail = "}" if pad else ""
    return head + pad + '{"type": "string"}' + tail + "}}" * pairs


def _hole_depth(value: Any, depth: int = 0) -> int | None:
    """Containers enclosing the HOLE string."""
    if value == HOLE:
        return depth
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for child in children:
        found = _hole_depth(child, depth + 1)
        if found is not None:
            return found
    return None


def fill(template: Any, total: int, make: Callable[[int], str]) -> bytes:
    """`template` with HOLE replaced by `make(levels)` so that the body's depth is `total`."""
    outer = _hole_depth(template)
    assert outer is not None
    raw = json.dumps(template)
    return raw.replace(json.dumps(HOLE), make(total - outer), 1).encode()


def user(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": f"{text} {MARK}", **extra}


def _responses_shapes() -> dict[str, tuple[Any, Callable[[int], str]]]:
    def tool(parameters: Any) -> dict[str, Any]:
        return {"type": "function", "name": "f", "parameters": parameters}

    fmt = {"format": {"type": "json_schema", "name": "s", "schema": HOLE}}
    return {
        "item extras (arrays)": ({"model": "plain", "input": [user(extra=HOLE)]}, nest),
        "item extras (objects)": ({"model": "plain", "input": [user(extra=HOLE)]}, lambda n: nest(n, "object")),
        "content part extras": (
            {
                "model": "plain",
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": MARK, "extra": HOLE}],
                    }
                ],
            },
            nest,
        ),
        "function_call_output": (
            {
                "model": "plain",
                "input": [user(), {"type": "function_call_output", "call_id": "c1", "output": HOLE}],
            },
            nest,
        ),
        "tool parameters (schema)": ({"model": "plain", "input": MARK, "tools": [tool(HOLE)]}, deep_schema),
        "tool parameters (extras)": (
            {"model": "plain", "input": MARK, "tools": [tool({"type": "object", "x-extra": HOLE})]},
            nest,
        ),
        "json_schema": ({"model": "plain", "input": MARK, "text": fmt}, deep_schema),
        "metadata": ({"model": "plain", "input": MARK, "metadata": {"k": HOLE}}, nest),
        "instructions": ({"model": "plain", "input": MARK, "instructions": HOLE}, nest),
    }


def _raw(text: str) -> bytes:
    return text.replace("MARK", MARK).encode()


def _odd_scalars() -> list[tuple[str, bytes, Expect]]:
    base = '{"model": "plain", "input": "MARK", '
    cases: list[tuple[str, bytes, Expect]] = [
        (f"temperature {v}", _raw(base + f'"temperature": {v}}}'), "4xx")
        for v in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e308")
    ]
    cases += [
        (f"max_output_tokens {v}", _raw(base + f'"max_output_tokens": {v}}}'), "4xx")
        for v in ("1e400", "18446744073709551616", str(10**400), "-1")
    ]
    cases.append(("max_output_tokens 2**63", _raw(base + '"max_output_tokens": 9223372036854775808}'), "not-5xx"))
    cases += [
        ("duplicate key model", _raw('{"model": "plain", "model": "plain", "input": "MARK"}'), "not-5xx"),
        ("duplicate key input", _raw('{"model": "plain", "input": [], "input": "MARK"}'), "not-5xx"),
        ("tool_choice null", _raw(base + '"tool_choice": null}'), "2xx"),
        ("body is an array", b"[]", "4xx"),
        ("body is null", b"null", "4xx"),
        ("body is empty", b"", "4xx"),
        ("invalid UTF-8", b'{"model": "plain", "input": "\xff\xfe"}', "4xx"),
        ("lone surrogate", _raw(base + '"instructions": "\\ud800"}'), "not-5xx"),
        ("metadata value 1", _raw(base + '"metadata": {"k": 1}}'), "4xx"),
        (
            "metadata 17 keys",
            _raw(base + '"metadata": {' + ", ".join(f'"k{i}": "v"' for i in range(17)) + "}}"),
            "4xx",
        ),
        ("input item is a number", _raw('{"model": "plain", "input": [1]}'), "4xx"),
        ("input item is null", _raw('{"model": "plain", "input": [null]}'), "4xx"),
        ("input item is an array", _raw('{"model": "plain", "input": [[]]}'), "4xx"),
    ]
    return cases


ITEM_TYPES: dict[str, Any] = {"object": {}, "array": [], "number": 1, "null": None, "bool": True, "unknown": "zzz"}


def cases(conversation_id: str) -> list[Case]:
    out: list[Case] = []
    for label, kind in ITEM_TYPES.items():
        item = {**user(), "type": kind}
        body = {"model": "plain", "input": [item]}
        # An unknown string type is left to each server's judgement: only the non-string ones must be 400s.
        expect: Expect = "not-5xx" if isinstance(kind, str) else "4xx"
        out.append(Case(f"item type {label}", "responses", json.dumps(body).encode(), expect))
        out.append(Case(f"item type {label}", "input_tokens", json.dumps(body).encode(), expect))
        out.append(Case(f"item type {label}", "conversations", json.dumps({"items": [item]}).encode(), expect))
        out.append(Case(f"item type {label}", "items", json.dumps({"items": [item]}).encode(), expect))
        part = {
            "model": "plain",
            "input": [{"type": "message", "role": "user", "content": [{"type": kind, "text": MARK}]}],
        }
        out.append(Case(f"content part type {label}", "responses", json.dumps(part).encode(), expect))
    for depth in DEPTHS:
        for label, (template, make) in _responses_shapes().items():
            deep = fill(template, depth, make)
            out.append(Case(f"{label}, depth {depth}", "responses", deep))
            out.append(Case(f"{label}, depth {depth}", "input_tokens", deep))
        items = fill({"items": [user(extra=HOLE)]}, depth, nest)
        out.append(Case(f"item extras, depth {depth}", "conversations", items))
        out.append(Case(f"item extras, depth {depth}", "items", items))
        out.append(Case(f"metadata, depth {depth}", "conversations", fill({"metadata": {"k": HOLE}}, depth, nest)))
        out.append(Case(f"body itself, depth {depth}", "responses", fill(HOLE, depth, nest)))
    for name, raw, expect in _odd_scalars():
        out.append(Case(name, "responses", raw, expect))
        out.append(Case(name, "input_tokens", raw, expect))
    return out
