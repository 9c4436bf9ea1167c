"""GBNF grammars that force tool calls in the model's own `<tool_call>` format.

The JSON-Schema part is converted by llama.cpp itself (see `LlamaClient.schema_grammar`), so
the grammar always matches the engine's dialect; this module only shapes the schema and wraps
the converted rules in `<tool_call>` blocks.
"""

from __future__ import annotations

import re
from typing import Any

from respgate.providers.base import FunctionSpec

# Above this, bounding the repetition in the grammar would copy the call rule too many times;
# the parser's own guard stops generation instead.
MAX_GRAMMAR_REPEAT = 16

_RULE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` where every object without `additionalProperties` gets `false`.

    Tiny models happily invent extra keys when the grammar lets them.
    """
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if isinstance(value, dict):
            value = (
                {name: closed_schema(sub) if isinstance(sub, dict) else sub for name, sub in value.items()}
                if key in ("properties", "$defs", "definitions", "patternProperties")
                else closed_schema(value)
            )
        elif isinstance(value, list):
            value = [closed_schema(sub) if isinstance(sub, dict) else sub for sub in value]
        result[key] = value
    is_object = result.get("type") == "object" or "properties" in result
    if is_object and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


def parameters_schema(tool: FunctionSpec) -> dict[str, Any]:
    """The tool's parameters as a closed object schema (an empty schema means no arguments)."""
    params = dict(tool.parameters or {})
    if "type" not in params and not any(key in params for key in ("anyOf", "oneOf", "allOf", "$ref")):
        params["type"] = "object"
    if params.get("type") == "object":
        params.setdefault("properties", {})
    return closed_schema(params)


def tool_call_schema(tools: list[FunctionSpec]) -> dict[str, Any]:
    """One JSON object `{"name": <const>, "arguments": <params>}` for any of `tools`, name first."""
    alternatives = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": parameters_schema(tool)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def rename_rule(grammar: str, old: str, new: str) -> str:
    """Rename a GBNF rule everywhere it is defined or referenced, never inside literals."""
    out: list[str] = []
    i, n = 0, len(grammar)
    while i < n:
        char = grammar[i]
        if char in '"[':
            close = '"' if char == '"' else "]"
            j = i + 1
            while j < n and grammar[j] != close:
                j += 2 if grammar[j] == "\\" else 1
            out.append(grammar[i : j + 1])
            i = j + 1
        elif char == "#":
            j = grammar.find("\n", i)
            j = n if j < 0 else j
            out.append(grammar[i:j])
            i = j
        elif match := _RULE_NAME.match(grammar, i):
            word = match.group()
            out.append(new if word == old else word)
            i = match.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def tool_calls_grammar(call_grammar: str, *, max_calls: int | None) -> str:
    """Grammar A: one or more `<tool_call>\\n{call}\\n</tool_call>` blocks and nothing else.

    `call_grammar` is the engine's conversion of `tool_call_schema(...)`; `max_calls` of 1 gives
    exactly one call, small bounds are enforced by the grammar.
    """
    body = rename_rule(call_grammar, "root", "tool-call")
    block = '"<tool_call>\\n" tool-call "\\n</tool_call>"'
    if max_calls == 1:
        root = f"root ::= {block}"
    elif max_calls is not None and max_calls <= MAX_GRAMMAR_REPEAT:
        root = f'root ::= ({block} "\\n"?){{1,{max_calls}}}'
    else:
        root = f'root ::= ({block} "\\n"?)+'
    return f"{root}\n{body.rstrip()}\n"
