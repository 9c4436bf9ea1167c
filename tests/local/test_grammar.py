"""Tool-call grammar shaping (the JSON-Schema conversion itself is llama.cpp's)."""

from __future__ import annotations

from respgate.providers.base import FunctionSpec
from respgate.providers.local.grammar import (
    closed_schema,
    rename_rule,
    tool_call_schema,
    tool_calls_grammar,
)

CONVERTED = 'root ::= "{" space "\\"root\\"" space "}" | [root]\nspace ::= | " "\nroot-x ::= root\n'


def test_objects_are_closed_recursively_unless_they_say_otherwise() -> None:
    schema = {
        "type": "object",
        "properties": {
            "inner": {"type": "object", "properties": {"a": {"type": "string"}}},
            "free": {"type": "object", "additionalProperties": True},
            "items": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
    }

    closed = closed_schema(schema)

    assert closed["additionalProperties"] is False
    assert closed["properties"]["inner"]["additionalProperties"] is False
    assert closed["properties"]["free"]["additionalProperties"] is True
    assert closed["properties"]["items"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the tool's own schema is left alone


def test_tool_call_schema_puts_name_before_arguments() -> None:
    tools = [
        FunctionSpec(name="a", description=None, parameters={"type": "object", "properties": {}}, strict=False),
        FunctionSpec(name="b", description="B", parameters={}, strict=False),
    ]

    schema = tool_call_schema(tools)

    first, second = schema["anyOf"]
    assert list(first["properties"]) == ["name", "arguments"]
    assert first["properties"]["name"] == {"const": "a"}
    assert second["properties"]["arguments"] == {"type": "object", "properties": {}, "additionalProperties": False}
    assert tool_call_schema(tools[:1]) == first


def test_rename_rule_touches_names_but_not_literals_or_classes() -> None:
    renamed = rename_rule(CONVERTED, "root", "tool-call")

    assert renamed == (
        'tool-call ::= "{" space "\\"root\\"" space "}" | [root]\nspace ::= | " "\nroot-x ::= tool-call\n'
    )


def test_grammar_a_repeats_blocks_within_the_limit() -> None:
    unbounded = tool_calls_grammar(CONVERTED, max_calls=None)
    bounded = tool_calls_grammar(CONVERTED, max_calls=3)
    single = tool_calls_grammar(CONVERTED, max_calls=1)

    block = '"<tool_call>\\n" tool-call "\\n</tool_call>"'
    assert unbounded.splitlines()[0] == f'root ::= ({block} "\\n"?)+'
    assert bounded.splitlines()[0] == f'root ::= ({block} "\\n"?){{1,3}}'
    assert single.splitlines()[0] == f"root ::= {block}"
    assert "tool-call ::= " in unbounded
