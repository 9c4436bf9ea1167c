"""Strict normalisation, tool_choice resolution, argument and output checks (reference §4)."""

from __future__ import annotations

from typing import Any

import pytest

from respgate.engine.tools import (
    check_arguments,
    check_output_text,
    resolve_text_format,
    resolve_tools,
    strict_violation,
)
from respgate.protocol.errors import GenerationFailed, InvalidRequest
from respgate.protocol.request import CreateResponse
from respgate.providers.base import FunctionSpec


def _request(**fields: Any) -> CreateResponse:
    return CreateResponse.model_validate({"model": "m", **fields})


def _tool(parameters: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"type": "function", "name": "f", "parameters": parameters, **extra}


def test_strict_violation_names_the_context() -> None:
    schema = {
        "type": "object",
        "properties": {"inner": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}},
        "required": ["inner"],
        "additionalProperties": False,
    }
    assert strict_violation(schema) == (
        "In context=('properties', 'inner'), 'additionalProperties' is required to be supplied and to be false."
    )
    partial = {
        "type": "object",
        "properties": {"a": {}, "b": {}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert strict_violation(partial) == (
        "In context=(), 'required' is required to be supplied and to be an array including every key in "
        "properties. Missing 'b'."
    )


def test_omitted_strict_is_normalised_and_the_model_sees_a_closed_schema() -> None:
    resolved = resolve_tools(
        _request(tools=[_tool({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})])
    )
    assert resolved.echo[0]["strict"] is True
    assert "additionalProperties" not in resolved.echo[0]["parameters"]  # echoed as sent
    assert resolved.specs[0].parameters["additionalProperties"] is False  # closed for the model
    loose = resolve_tools(_request(tools=[_tool({"type": "object", "properties": {"a": {}}})]))
    assert loose.echo[0]["strict"] is False and "additionalProperties" not in loose.specs[0].parameters


def test_null_parameters_become_an_empty_object() -> None:
    resolved = resolve_tools(_request(tools=[_tool(None, description=None)]))
    assert resolved.specs[0].parameters == {"type": "object", "properties": {}, "additionalProperties": False}
    assert resolved.echo[0]["parameters"] is None or resolved.echo[0]["parameters"] == {
        "type": "object",
        "properties": {},
    }


def test_invalid_json_schema_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as caught:
        resolve_tools(_request(tools=[_tool({"type": "not-a-type"})]))
    assert caught.value.param == "tools[0].parameters"


def test_duplicate_tool_names_are_rejected() -> None:
    tool = _tool({"type": "object", "properties": {}})
    with pytest.raises(InvalidRequest) as caught:
        resolve_tools(_request(tools=[tool, tool]))
    assert caught.value.param == "tools[1].name"


def test_tool_choice_modes() -> None:
    tools = [_tool({"type": "object", "properties": {}})]
    assert resolve_tools(_request(tools=tools)).mode == "auto"
    named = resolve_tools(_request(tools=tools, tool_choice={"type": "function", "name": "f"}))
    assert (named.mode, named.allowed) == ("required", frozenset({"f"}))
    allowed = resolve_tools(
        _request(
            tools=tools,
            tool_choice={"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]},
        )
    )
    assert (allowed.mode, allowed.allowed) == ("auto", frozenset({"f"}))


SPEC = FunctionSpec(
    name="f",
    description=None,
    parameters={
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    },
    strict=True,
)


def test_check_arguments() -> None:
    check_arguments(SPEC, '{"n": 3}')
    for bad in ('{"n": "3"}', "{}", '{"n": 1, "m": 2}', "[]", "{"):
        with pytest.raises(GenerationFailed):
            check_arguments(SPEC, bad)


def test_text_format_checks() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(InvalidRequest) as caught:
        resolve_text_format(
            _request(text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}})
        )
    assert caught.value.message.startswith(
        "Invalid schema for response_format 'out': In context=(), 'additionalProperties'"
    )
    fmt = resolve_text_format(_request(text={"format": {"type": "json_schema", "name": "out", "schema": schema}}))
    assert fmt is not None
    check_output_text(fmt, '{"a": "x"}')
    with pytest.raises(GenerationFailed):
        check_output_text(fmt, '{"a": 1}')
    json_mode = resolve_text_format(_request(text={"format": {"type": "json_object"}}))
    check_output_text(json_mode, "[1, 2]")
    with pytest.raises(GenerationFailed):
        check_output_text(json_mode, "not json")
