"""Validation against the Open Responses OpenAPI document (a copy lives in tests/data).

The document's objects are open (no `additionalProperties: false`), so on top of the schema check
every key we send is also compared with the schema's properties; the few keys that OpenAI sends
and the spec does not list are allowed here by name, and so are the spec's required keys that
OpenAI itself does not send.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DATA = Path(__file__).resolve().parent.parent / "data"

# Keys of the Response object that OpenAI sends (see the seed's example response and reference §5)
# but the Open Responses schema does not list.
EXTRA_RESPONSE_KEYS = frozenset({"content_filters", "conversation", "user"})

# Event keys OpenAI sends that the schema does not list: `name` on arguments.done (required by
# OpenAI's own spec, reference §6.2); `obfuscation` on every `*.delta` event (see `check_event`).
# Raw reasoning text events: OpenAI (and the SDK) call them `response.reasoning_text.*`, the Open
# Responses document `response.reasoning.*`; respgate follows OpenAI, and is checked under the spec's name.
OPEN_RESPONSES_NAME = {
    "response.reasoning_text.delta": "response.reasoning.delta",
    "response.reasoning_text.done": "response.reasoning.done",
}

EXTRA_EVENT_KEYS = {"response.function_call_arguments.done": frozenset({"name"})}

# Keys the Open Responses schema requires of a Response that OpenAI's own responses (the seed's
# example, the SDK's `Response` type) do not carry; respgate follows OpenAI here.
UNSENT_REQUIRED_RESPONSE_KEYS = frozenset({"presence_penalty", "frequency_penalty"})


HOSTED_TOOL_TYPES = frozenset(
    {
        "web_search",
        "web_search_preview",
        "file_search",
        "code_interpreter",
        "image_generation",
        "mcp",
        "local_shell",
    }
)


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / "openresponses-openapi.json").read_text(encoding="utf-8"))
    document = copy.deepcopy(document)
    resource = document["components"]["schemas"]["ResponseResource"]
    resource["required"] = [key for key in resource["required"] if key not in UNSENT_REQUIRED_RESPONSE_KEYS]
    # The document types `text.format.schema` of a json_schema format as null only (a defect: the
    # request side takes an object, and the echo repeats it); an object is allowed here.
    json_format = document["components"]["schemas"]["JsonSchemaResponseFormat"]["properties"]
    json_format["schema"] = {"anyOf": [{"type": "object"}, {"type": "null"}]}
    # The document knows function tools only. OpenAI echoes every tool of the request, so a response
    # may also list a namespace of functions (checked here) or a hosted tool the client sent (which
    # respgate echoes as sent when configured to omit such tools).
    schemas = document["components"]["schemas"]
    schemas["NamespaceTool"] = {
        "type": "object",
        "properties": {
            "type": {"const": "namespace"},
            "name": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "tools": {"type": "array", "items": {"$ref": "#/components/schemas/FunctionTool"}},
        },
        "required": ["type", "name", "tools"],
    }
    schemas["EchoedHostedTool"] = {
        "type": "object",
        "properties": {"type": {"enum": sorted(HOSTED_TOOL_TYPES)}},
        "required": ["type"],
    }
    schemas["Tool"] = {
        "oneOf": [
            {"$ref": "#/components/schemas/FunctionTool"},
            {"$ref": "#/components/schemas/NamespaceTool"},
            {"$ref": "#/components/schemas/EchoedHostedTool"},
        ]
    }
    return document


@cache
def _event_schema_names() -> dict[str, str]:
    """Event `type` -> schema name, from the `text/event-stream` union of `POST /responses`."""
    document = _document()
    stream = document["paths"]["/responses"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    names: dict[str, str] = {}
    for ref in stream["schema"]["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        kind = document["components"]["schemas"][name]["properties"]["type"]["enum"][0]
        names[kind] = name
    return names


@cache
def _validator(name: str) -> Draft202012Validator:
    document = _document()
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def _properties(name: str) -> set[str]:
    return set(_document()["components"]["schemas"][name]["properties"])


def _check(name: str, value: Any) -> None:
    errors = sorted(_validator(name).iter_errors(value), key=lambda error: list(error.absolute_path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:5])
        raise AssertionError(f"not a valid Open Responses {name}: {details}")


def check_response(response: dict[str, Any]) -> None:
    """`response` is a valid `ResponseResource` and has no key the schema does not know of."""
    _check("ResponseResource", response)
    unknown = set(response) - _properties("ResponseResource") - EXTRA_RESPONSE_KEYS
    assert not unknown, f"Response keys outside the Open Responses schema: {sorted(unknown)}"


def check_event(event: dict[str, Any]) -> None:
    """`event` is a valid streaming event of its type, with no key its schema does not list."""
    if event["type"] in OPEN_RESPONSES_NAME:
        event = {**event, "type": OPEN_RESPONSES_NAME[event["type"]]}
    name = _event_schema_names().get(event["type"])
    assert name is not None, f"event type {event['type']!r} is not in the Open Responses stream union"
    _check(name, event)
    unknown = set(event) - _properties(name) - EXTRA_EVENT_KEYS.get(event["type"], frozenset())
    if event["type"].endswith(".delta"):
        # OpenAI pads every delta event with `obfuscation`; the schema lists it only on some of them.
        unknown.discard("obfuscation")
    assert not unknown, f"{event['type']} keys outside the Open Responses schema: {sorted(unknown)}"
    if "response" in event:
        check_response(event["response"])


def check_error_body(body: dict[str, Any]) -> None:
    """An HTTP error body: exactly `{"error": {message, type, param, code}}`."""
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str)
