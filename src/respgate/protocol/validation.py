"""Turn pydantic validation errors into OpenAI's 400s, naming the field as OpenAI does (`input[0].content`)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from respgate.protocol.errors import InvalidRequest

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a decimal",
    "float_parsing": "a decimal",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}

# pydantic error -> (OpenAI's words, operator, ctx key, OpenAI's code infix: `decimal_above_max_value`).
_RANGE = {
    "greater_than_equal": ("below minimum value", ">=", "ge", "below_min"),
    "greater_than": ("below minimum value", ">", "gt", "below_min"),
    "less_than_equal": ("above maximum value", "<=", "le", "above_max"),
    "less_than": ("above maximum value", "<", "lt", "above_max"),
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _param_and_value(raw: Any, loc: tuple[int | str, ...]) -> tuple[str, Any]:
    """Walk `loc` over the raw JSON, skipping the union/tag segments pydantic inserts."""
    parts: list[str] = []
    node = raw
    last = len(loc) - 1
    for position, segment in enumerate(loc):
        if isinstance(segment, int) and isinstance(node, list) and 0 <= segment < len(node):
            parts.append(f"[{segment}]")
            node = node[segment]
        elif isinstance(segment, str) and isinstance(node, dict) and segment in node:
            parts.append(f".{segment}" if parts else segment)
            node = node[segment]
        elif isinstance(segment, str) and isinstance(node, dict) and position == last:
            # a missing key (always the last segment): name it; other unknown segments are union tags
            parts.append(f".{segment}" if parts else segment)
            node = None
            break
    return "".join(parts), node


def _rank(error: ErrorDetails) -> tuple[int, int]:
    # Prefer errors inside the branch that matches the value's shape: the deepest, then not a bare type error.
    return (len(error["loc"]), 0 if error["type"] in _TYPE_NAMES else 1)


def to_invalid_request(exc: ValidationError, raw: Any, *, prefix: str = "") -> InvalidRequest:
    """The single most useful error of `exc`, phrased like OpenAI's; `prefix` is where `raw` sits."""
    errors = exc.errors(include_url=False)
    error = max(errors, key=_rank)
    param, value = _param_and_value(raw, error["loc"])
    if prefix:
        param = prefix + ("." + param if param and not param.startswith("[") else param)
    kind = error["type"]
    if kind == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind == "union_tag_invalid":
        # A discriminated union with an unknown tag: name the tag field and the tags it accepts.
        ctx = error.get("ctx") or {}
        field = str(ctx.get("discriminator", "")).strip("'")
        return InvalidRequest(
            f"Invalid value: '{ctx.get('tag')}'. Supported values are: {ctx.get('expected_tags')}.",
            param=f"{param}.{field}" if field else param,
            code="invalid_value",
        )
    if kind in ("literal_error", "enum"):
        expected = str((error.get("ctx") or {}).get("expected", ""))
        shown = value if not isinstance(value, dict | list) else _json_kind(value)
        return InvalidRequest(
            f"Invalid value: '{shown}'. Supported values are: {expected}.", param=param, code="invalid_value"
        )
    if kind in _RANGE:
        words, op, key, infix = _RANGE[kind]
        bound = (error.get("ctx") or {}).get(key)
        number = "decimal" if isinstance(bound, float) or isinstance(value, float) else "integer"
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        code = f"{number}_{infix}_value"
        return InvalidRequest(
            f"Invalid '{param}': {number} {words}. Expected a value {op} {bound}, but got {value} instead.",
            param=param,
            code=code,
        )
    if kind in _TYPE_NAMES:
        return InvalidRequest(
            f"Invalid type for '{param}': expected {_TYPE_NAMES[kind]}, but got {_json_kind(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if kind in ("too_long", "too_short") and isinstance(value, list):
        ctx = error.get("ctx") or {}
        if kind == "too_long":
            return InvalidRequest(
                f"Invalid '{param}': array too long. Expected an array with maximum length "
                f"{ctx.get('max_length')}, but got an array with length {len(value)} instead.",
                param=param,
                code="array_above_max_length",
            )
        return InvalidRequest(
            f"Invalid '{param}': array too short. Expected an array with minimum length "
            f"{ctx.get('min_length')}, but got an array with length {len(value)} instead.",
            param=param,
            code="array_below_min_length",
        )
    if kind in ("string_too_long", "too_long"):
        limit = (error.get("ctx") or {}).get("max_length")
        return InvalidRequest(
            f"Invalid '{param}': string too long. Expected a string with maximum length {limit}.",
            param=param,
            code="string_above_max_length",
        )
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        return InvalidRequest(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern "
            f"'{pattern}'.",
            param=param,
            code="invalid_value",
        )
    message = error["msg"].removeprefix("Value error, ")
    return InvalidRequest(f"Invalid '{param}': {message}", param=param, code="invalid_value")


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], raw: Any) -> M:
    """Validate `raw` as `model`, raising `InvalidRequest` with OpenAI's wording on failure."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise to_invalid_request(exc, raw) from exc
