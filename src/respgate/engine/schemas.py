"""Client JSON schemas are data: only local references, OpenAI's size limits, compiled offline.

A schema comes from a request (function `parameters`, `text.format.schema`), so nothing in it may
make the server read a file or open a connection: a reference that leaves the schema is a 400, and
every validator is compiled with jsonschema-rs in offline mode, which resolves references inside the
schema only. jsonschema-rs rather than the pure-Python `jsonschema`: checking a schema against the
2020-12 meta-schema costs 4 µs instead of 1.5 ms (20,000 properties: 26 ms instead of 7 s).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from respgate.config import Limits
from respgate.protocol.errors import InvalidRequest

_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose values are instances, not schemas: a `{"$ref": …}` inside them is only data.
_DATA = frozenset({"enum", "const", "default", "examples"})
# Keywords under which a schema describes a nested value: one more level of nesting.
_NESTED_MAPS = frozenset({"properties", "patternProperties"})
_NESTED = frozenset({"items", "prefixItems", "additionalProperties", "contains", "unevaluatedItems"})
_NAMES = frozenset({"properties", "$defs", "definitions"})

# The 2020-12 meta-schema, whatever `$schema` the client's schema names: a client's `$schema` must
# not pick a meta-schema to fetch.
_META = jsonschema_rs.Draft202012Validator({"$ref": "https://json-schema.org/draft/2020-12/schema"}, offline=True)


@dataclass(frozen=True, slots=True)
class SchemaSize:
    """What OpenAI's Structured Outputs limits count, measured in one pass."""

    properties: int
    nesting: int
    enum_values: int
    string_chars: int


def _is_local(reference: str) -> bool:
    # `#`, `#/json/pointer` and `#anchor`: resolved inside the schema, whatever its `$id` says.
    return reference.startswith("#")


def _children(node: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(keyword, value, one level deeper) for every value of `node` that may hold subschemas."""
    for key, value in node.items():
        if key in _DATA:
            continue
        if key in _NESTED_MAPS and isinstance(value, dict):
            for sub in value.values():
                yield key, sub, True
        else:
            yield key, value, key in _NESTED


def measure(schema: Any, *, what: str, param: str) -> SchemaSize:
    """The schema's size in OpenAI's terms; a 400 naming `param` for a reference that is not local."""
    properties = enum_values = string_chars = nesting = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, list):
            stack.extend((item, level) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        nesting = max(nesting, level)
        for keyword in _REFERENCES:
            reference = node.get(keyword)
            if isinstance(reference, str) and not _is_local(reference):
                raise InvalidRequest(
                    f"Invalid schema for {what}: '{keyword}' must reference a location inside the schema "
                    "('#', '#/…' or '#anchor'); references to files, URLs or other documents are not "
                    "resolved.",
                    param=param,
                    code="invalid_value",
                )
        for key in _NAMES:
            names = node.get(key)
            if isinstance(names, dict):
                string_chars += sum(len(name) for name in names)
                if key == "properties":
                    properties += len(names)
        values = node.get("enum")
        if isinstance(values, list):
            enum_values += len(values)
            string_chars += sum(len(value) for value in values if isinstance(value, str))
        if isinstance(node.get("const"), str):
            string_chars += len(node["const"])
        for _key, value, deeper in _children(node):
            if isinstance(value, dict | list):
                stack.append((value, level + 1 if deeper else level))
    return SchemaSize(properties=properties, nesting=nesting, enum_values=enum_values, string_chars=string_chars)


def check_size(size: SchemaSize, *, what: str, param: str, limits: Limits) -> None:
    """The Structured Outputs limits that bound every schema's cost (nesting is for strict ones)."""
    for count, limit, words in (
        (size.properties, limits.max_schema_properties, "object properties"),
        (size.enum_values, limits.max_schema_enum_values, "enum values"),
        (
            size.string_chars,
            limits.max_schema_string_chars,
            "characters of property names, definition names, enum and const values",
        ),
    ):
        if count > limit:
            raise InvalidRequest(
                f"Invalid schema for {what}: {count} {words} exceeds limit of {limit}.", param=param
            )


def nesting_violation(size: SchemaSize, limits: Limits) -> str | None:
    """OpenAI's words for a strict schema nested too deeply; None if it is not."""
    if size.nesting > limits.max_schema_nesting:
        return f"{size.nesting} levels of nesting exceeds limit of {limits.max_schema_nesting}."
    return None


def check_schema(schema: Any, *, what: str, param: str, limits: Limits) -> SchemaSize:
    """A 400 naming `param` unless `schema` is a local, bounded, valid 2020-12 schema that compiles."""
    size = measure(schema, what=what, param=param)
    check_size(size, what=what, param=param, limits=limits)
    error = next(_META.iter_errors(schema), None)
    if error is not None:
        raise InvalidRequest(f"Invalid schema for {what}: {error.message}", param=param)
    try:
        compiled(schema)
    except jsonschema_rs.ValidationError as exc:
        # A local reference to nowhere, a pattern that is not a regular expression…
        raise InvalidRequest(f"Invalid schema for {what}: {exc.message}", param=param) from exc
    return size


class _Compiled:
    """Validators by schema digest, the most recently used kept: tool schemas repeat turn after turn."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._validators: OrderedDict[bytes, jsonschema_rs.Validator] = OrderedDict()
        self._lock = threading.Lock()  # requests are checked on worker threads too

    def get(self, schema: Any) -> jsonschema_rs.Validator:
        text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        key = hashlib.blake2b(text, digest_size=16).digest()
        with self._lock:
            validator = self._validators.get(key)
            if validator is not None:
                self._validators.move_to_end(key)
                return validator
        validator = jsonschema_rs.Draft202012Validator(schema, offline=True)
        with self._lock:
            self._validators[key] = validator
            if len(self._validators) > self._size:
                self._validators.popitem(last=False)
        return validator


_COMPILED = _Compiled(256)


def compiled(schema: Any) -> jsonschema_rs.Validator:
    """The validator for a client schema, compiled once; offline: it never reads a file or the network."""
    return _COMPILED.get(schema)


def first_error(schema: Any, instance: Any) -> jsonschema_rs.ValidationError | None:
    """The first way `instance` breaks `schema`, or None."""
    return next(compiled(schema).iter_errors(instance), None)
