"""Reading requests the way OpenAI does: the JSON body (with a size limit), and query parameters."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, NamedTuple, get_args

import jiter
import orjson
from starlette.requests import Request

from respgate.protocol.bounds import check_shape, too_deep
from respgate.protocol.errors import InvalidRequest, PayloadTooLarge
from respgate.protocol.request import Includable

_INCLUDABLE: set[str] = set(get_args(Includable))
# Past this size a body is worth a turn of the event loop between reading and parsing it.
LARGE_BODY_BYTES = 1024 * 1024
# jiter's nesting limit: deeper bodies are refused while parsing.
PARSER_MAX_DEPTH = 200


class JsonBody(NamedTuple):
    value: Any
    size: int  # bytes as received: what decides whether checking it is worth a worker thread


def parse_json(body: bytes) -> Any:
    """`body` as JSON, refusing what JSON parsers disagree on: duplicate keys, NaN and Infinity.

    A proxy in front that reads the first of two duplicate keys while this server reads the last
    would check one request and pass on another; refusing them closes that gap (jiter finds them in
    the same pass, at about the cost of orjson's parse).
    """
    try:
        # Only keys are cached: request text does not outlive its request in a process-wide cache.
        return jiter.from_json(body, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        detail = str(exc)
        if detail.startswith("recursion limit exceeded"):
            raise _where_too_deep(body) from exc
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The API expects a JSON payload (without "
            f"duplicate keys, NaN or Infinity), but what was sent was not valid JSON: {detail}.",
            code="invalid_json",
        ) from exc


def _where_too_deep(body: bytes) -> InvalidRequest:
    """The error for a body nested past the parser's limit, naming where (orjson parses up to 1024)."""
    try:
        check_shape(orjson.loads(body), max_depth=PARSER_MAX_DEPTH, max_string_chars=len(body))
    except orjson.JSONDecodeError:
        pass
    except InvalidRequest as error:
        return error
    return too_deep("body", PARSER_MAX_DEPTH)


async def json_body(request: Request, *, max_bytes: int) -> JsonBody:
    """The parsed JSON body: 413 past `max_bytes` (checked as it streams in), 400 if not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body too large: the limit is {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"Request body too large: the limit is {max_bytes} bytes.")
        chunks.append(chunk)
    # One copy of the body, not a growing buffer and a copy of it (the parser takes only `bytes`).
    body = b"".join(chunks)
    if size > LARGE_BODY_BYTES:
        # Copying a large body and parsing it each hold the interpreter for milliseconds: let the
        # other requests have a turn between the two.
        del chunks
        await asyncio.sleep(0)
    return JsonBody(parse_json(body), size)


def flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise InvalidRequest(
            f"Invalid type for '{name}': expected a boolean, but got a string instead.",
            param=name,
            code="invalid_type",
        )
    return lowered in ("true", "1")


def int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidRequest(
            f"Invalid type for '{name}': expected an integer, but got a string instead.",
            param=name,
            code="invalid_type",
        ) from exc
    if number < minimum or (maximum is not None and number > maximum):
        bound = f">= {minimum}" if number < minimum else f"<= {maximum}"
        code = "integer_below_min_value" if number < minimum else "integer_above_max_value"
        raise InvalidRequest(
            f"Invalid '{name}': integer out of range. Expected a value {bound}, but got {number} instead.",
            param=name,
            code=code,
        )
    return number


def order_param(request: Request) -> Literal["asc", "desc"]:
    """The `order` of a list endpoint; OpenAI's default is newest first."""
    order = request.query_params.get("order", "desc")
    if order == "asc":
        return "asc"
    if order == "desc":
        return "desc"
    raise InvalidRequest(
        f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order", code="invalid_value"
    )


def check_include(request: Request) -> set[str]:
    """The `include[]` values (the SDK's bracket form, or plain `include`), each one OpenAI knows."""
    values = request.query_params.getlist("include[]") + request.query_params.getlist("include")
    for value in values:
        if value not in _INCLUDABLE:
            raise InvalidRequest(
                f"Invalid value: '{value}'. Supported values are: {', '.join(sorted(_INCLUDABLE))}.",
                param="include",
                code="invalid_value",
            )
    return set(values)


def without_hidden_reasoning(items: list[dict[str, Any]], include: set[str]) -> list[dict[str, Any]]:
    """`items` as the client may see them: reasoning blobs only when included."""
    if "reasoning.encrypted_content" in include:
        return items
    if not any("encrypted_content" in item for item in items if item.get("type") == "reasoning"):
        return items
    return [
        {key: value for key, value in item.items() if key != "encrypted_content"}
        if item.get("type") == "reasoning"
        else item
        for item in items
    ]
