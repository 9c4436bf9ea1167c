"""Function tools: strict normalisation as OpenAI does it, tool_choice resolution, argument checks."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson

from respgate.config import Limits
from respgate.engine.schemas import check_schema, first_error, nesting_violation
from respgate.protocol.errors import GenerationFailed, InvalidRequest
from respgate.protocol.request import (
    CreateResponse,
    FormatJsonObject,
    FormatJsonSchema,
    FunctionTool,
    NamespaceTool,
    ToolChoiceAllowed,
    ToolChoiceFunction,
)
from respgate.providers.base import FunctionSpec, ToolMode

_EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}


def strict_violation(schema: Any, path: tuple[str, ...] = ()) -> str | None:
    """Why `schema` is not in the Structured Outputs subset, in OpenAI's words; None if it is."""
    if not isinstance(schema, dict):
        return None
    context = f"In context={path!r}, "
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object:
        if schema.get("additionalProperties") is not False:
            return context + "'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [name for name in properties if name not in required]
        if missing:
            return (
                context + "'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
        for name, sub in properties.items():
            if problem := strict_violation(sub, (*path, "properties", name)):
                return problem
    for key in ("items", "not"):
        if problem := strict_violation(schema.get(key), (*path, key)):
            return problem
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for index, sub in enumerate(schema.get(key) or []):
            if problem := strict_violation(sub, (*path, key, str(index))):
                return problem
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            if problem := strict_violation(sub, (*path, key, name)):
                return problem
    return None


def _closed(schema: Any) -> Any:
    """A copy of `schema` with `additionalProperties: false` on every object that did not say otherwise."""
    if isinstance(schema, list):
        return [_closed(sub) for sub in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _closed(value) for key, value in schema.items()}
    if (schema.get("type") == "object" or "properties" in schema) and "additionalProperties" not in schema:
        result["additionalProperties"] = False
    return result


@dataclass(frozen=True, slots=True)
class ResolvedTools:
    specs: list[FunctionSpec]
    echo: list[dict[str, Any]]
    mode: ToolMode
    allowed: frozenset[str] | None
    omitted: list[str]


def _function_spec(
    tool: FunctionTool, where: str, limits: Limits, namespace: str | None = None
) -> tuple[FunctionSpec, dict[str, Any]]:
    parameters = tool.parameters if tool.parameters is not None else dict(_EMPTY_OBJECT)
    param = f"{where}.parameters"
    size = check_schema(parameters, what=f"function '{tool.name}'", param=param, limits=limits)
    too_deep = nesting_violation(size, limits)
    problem = strict_violation(_closed(parameters)) or too_deep
    if tool.strict:
        if explicit := strict_violation(parameters) or too_deep:
            raise InvalidRequest(f"Invalid schema for function '{tool.name}': {explicit}", param=param)
        strict = True
    elif tool.strict is None:
        # Omitted `strict`: made strict when that changes nothing the caller meant (all properties required).
        strict = problem is None
    else:
        strict = False
    model_schema = _closed(parameters) if strict else copy.deepcopy(parameters)
    spec = FunctionSpec(
        name=f"{namespace}__{tool.name}" if namespace else tool.name,
        description=tool.description,
        parameters=model_schema,
        strict=strict,
        namespace=namespace,
        function=tool.name if namespace else None,
    )
    echo = tool.model_dump(exclude_none=False)
    echo.update(parameters=parameters, strict=strict, description=tool.description)
    return spec, echo


def resolve_tools(
    request: CreateResponse, *, limits: Limits | None = None, omit_unsupported: bool = False
) -> ResolvedTools:
    """Validate `tools` and `tool_choice`.

    A tool type the server cannot run is a 400 naming it, unless the server is configured to omit
    such tools (`unsupported_tools: omit`): then the model does not see them, they are echoed as sent,
    and their types are reported back (the `x-respgate-omitted-tools` header).
    """
    limits = limits or Limits()
    specs: list[FunctionSpec] = []
    echo: list[dict[str, Any]] = []
    omitted: list[str] = []
    seen: set[str] = set()

    def add(tool: FunctionTool, where: str, namespace: str | None = None) -> None:
        spec, shown = _function_spec(tool, where, limits, namespace)
        if spec.name in seen:
            raise InvalidRequest(
                f"Duplicate tool name '{spec.name}' in tools.", param=f"{where}.name", code="invalid_value"
            )
        seen.add(spec.name)
        specs.append(spec)
        if namespace is None:
            echo.append(shown)

    for index, tool in enumerate(request.tools):
        if isinstance(tool, FunctionTool):
            add(tool, f"tools[{index}]")
        elif isinstance(tool, NamespaceTool):
            for position, inner in enumerate(tool.tools):
                add(inner, f"tools[{index}].tools[{position}]", tool.name)
            echo.append(tool.model_dump(exclude_none=False))
        elif omit_unsupported:
            omitted.append(tool.type)
            echo.append(tool.model_dump(exclude_none=False))
        else:
            raise InvalidRequest(
                f"Tool type '{tool.type}' is not supported by this server; only 'function' and 'namespace' "
                "tools are (a server configured with `unsupported_tools: omit` leaves such tools out).",
                param=f"tools[{index}].type",
                code="unsupported_tool",
            )

    choice = request.tool_choice
    mode: ToolMode
    allowed: frozenset[str] | None = None
    if isinstance(choice, str):
        mode = choice
        if mode == "required" and not specs:
            raise InvalidRequest(
                "Tool choice 'required' must be specified with 'tools' parameter.", param="tool_choice"
            )
    elif isinstance(choice, ToolChoiceFunction):
        if choice.name not in seen:
            raise InvalidRequest(
                f"Tool choice '{choice.name}' not found in 'tools' parameter.", param="tool_choice.name"
            )
        mode, allowed = "required", frozenset({choice.name})
    elif isinstance(choice, ToolChoiceAllowed):
        names: set[str] = set()
        for index, ref in enumerate(choice.tools):
            if ref.type != "function" or ref.name not in seen:
                raise InvalidRequest(
                    f"Allowed tool '{ref.name or ref.type}' not found in 'tools' parameter.",
                    param=f"tool_choice.tools[{index}]",
                )
            names.add(ref.name)
        mode, allowed = choice.mode, frozenset(names)
    else:
        raise InvalidRequest(
            f"Tool choice type '{choice.type}' is not supported by this server.",
            param="tool_choice.type",
            code="unsupported_tool",
        )
    return ResolvedTools(specs=specs, echo=echo, mode=mode, allowed=allowed, omitted=omitted)


def resolve_text_format(request: CreateResponse, *, limits: Limits | None = None) -> dict[str, Any] | None:
    """The `text.format` the model must follow, checked like OpenAI checks `response_format`."""
    if request.text is None:
        return None
    fmt = request.text.format
    if isinstance(fmt, FormatJsonObject):
        return {"type": "json_object"}
    if not isinstance(fmt, FormatJsonSchema):
        return None
    limits = limits or Limits()
    what = f"response_format '{fmt.name}'"
    size = check_schema(fmt.schema_, what=what, param="text.format.schema", limits=limits)
    if fmt.strict and (problem := strict_violation(fmt.schema_) or nesting_violation(size, limits)):
        raise InvalidRequest(
            f"Invalid schema for response_format '{fmt.name}': {problem}", param="text.format.schema"
        )
    return {
        "type": "json_schema",
        "name": fmt.name,
        "schema": fmt.schema_,
        "strict": bool(fmt.strict),
        "description": fmt.description,
    }


def check_arguments(spec: FunctionSpec, arguments: str) -> None:
    """Raise `GenerationFailed` unless `arguments` is a JSON object valid for the tool's schema."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise GenerationFailed(
            f"The model produced arguments for '{spec.name}' that are not valid JSON.",
            code="invalid_tool_arguments",
        ) from exc
    if not isinstance(value, dict):
        raise GenerationFailed(
            f"The model produced arguments for '{spec.name}' that are not a JSON object.",
            code="invalid_tool_arguments",
        )
    error = first_error(spec.parameters, value)
    if error is not None:
        where = "/".join(str(part) for part in error.instance_path) or "(root)"
        raise GenerationFailed(
            f"The model produced arguments for '{spec.name}' that do not match its schema at {where}: "
            f"{error.message}",
            code="invalid_tool_arguments",
        )


def check_output_text(text_format: dict[str, Any] | None, text: str) -> None:
    """Raise `GenerationFailed` when text promised as JSON (json_schema/json_object) is not."""
    if text_format is None:
        return
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise GenerationFailed("The model's output is not valid JSON.", code="invalid_json_output") from exc
    if text_format["type"] == "json_schema":
        error = first_error(text_format["schema"], value)
        if error is not None:
            raise GenerationFailed(
                f"The model's output does not match the schema '{text_format['name']}': {error.message}",
                code="invalid_json_output",
            )
