"""Odd and hostile bodies: each is an OpenAI-shaped 400 naming the param, never a 500 (issue 8, item 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.harness import KEY_A, KEY_B, scripted
from support.openresponses import check_error_body

pytestmark = pytest.mark.asyncio

AUTH = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"}
MODELS = [scripted("chat", {"text": "Hello there."})]
SMALL_LIMITS = {
    "max_input_items": 50,
    "max_string_chars": 4096,
    "max_schema_properties": 20,
    "max_schema_enum_values": 30,
    "max_schema_string_chars": 600,
}


def nested(depth: int, leaf: str = "1") -> str:
    """`depth` levels of objects and arrays around `leaf`, as JSON text (no recursion anywhere)."""
    opening = "".join('{"a":' if level % 2 else "[" for level in range(depth))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(depth)))
    return opening + leaf + closing


def schema_nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"], "additionalProperties": False}
    return schema


def body(**fields: Any) -> str:
    return json.dumps({"model": "chat", "input": "hi", **fields})


def fn(name: str = "f", parameters: Any = None, **extra: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": parameters or {"type": "object"}, **extra}


def item(**fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": "hi", **fields}


ODD = [{"a": 1}, [1], 5, 1.5, True]

CASES: list[tuple[str, str, str | None]] = [
    # item, part, tool, tool_choice and text.format `type` of every JSON type
    *[(f"item-type-{i}", body(input=[item(type=value)]), "input[0].type") for i, value in enumerate(ODD)],
    ("item-type-null-no-role", body(input=[{"type": None, "content": "x"}]), "input[0].type"),
    *[
        (f"part-type-{i}", body(input=[item(content=[{"type": value, "text": "x"}])]), "input[0].content[0]")
        for i, value in enumerate([*ODD, None])
    ],
    *[(f"tool-type-{i}", body(tools=[{"type": value}]), "tools[0].type") for i, value in enumerate([*ODD, None])],
    ("tool-choice-object-type", body(tool_choice={"type": {"a": 1}}), "tool_choice.type"),
    ("tool-choice-array", body(tool_choice=["auto"]), "tool_choice"),
    ("tool-choice-number", body(tool_choice=3), "tool_choice"),
    *[
        (f"format-type-{i}", body(text={"format": {"type": value}}), "text.format.type")
        for i, value in enumerate([*ODD, None])
    ],
    ("format-null", body(text={"format": None}), "text.format"),
    ("input-number", body(input=5), "input"),
    ("tools-object", body(tools={"type": "function"}), "tools"),
    # nesting, within the parser's limit and past it, in every place a client can nest
    ("deep-item-extra", body(input=[item(extra="@")]).replace('"@"', nested(100)), "input[0].extra"),
    (
        "deep-part-extra",
        body(input=[item(content=[{"type": "input_text", "text": "x", "x": "@"}])]).replace('"@"', nested(120)),
        "input[0].content[0].x",
    ),
    ("deep-tool-parameters", body(tools=[fn(parameters=schema_nested(40))]), "tools[0].parameters"),
    (
        "deep-namespace-parameters",
        body(
            tools=[{"type": "namespace", "name": "ns", "tools": [fn(parameters={"type": "object", "p": "@"})]}]
        ).replace('"@"', nested(100)),
        "tools[0].tools[0].parameters",
    ),
    (
        "deep-json-schema",
        body(text={"format": {"type": "json_schema", "name": "o", "schema": {"default": "@"}}}).replace(
            '"@"', nested(150)
        ),
        "text.format.schema",
    ),
    ("deep-metadata", body(metadata={"k": "@"}).replace('"@"', nested(70)), "metadata"),
    ("deep-ignored-field", body(context_management="@").replace('"@"', nested(190)), "context_management"),
    ("deep-300", body(input=[item(extra="@")]).replace('"@"', nested(300)), "input[0].extra"),
    ("deep-1000", body(prompt_cache_options="@").replace('"@"', nested(1000)), "prompt_cache_options"),
    ("deep-past-every-parser", body(input=[item(extra="@")]).replace('"@"', nested(3000)), "body"),
    # numbers no JSON writer can write back, NaN and Infinity
    ("nan", '{"model": "chat", "input": "hi", "temperature": NaN}', None),
    ("infinity", '{"model": "chat", "input": "hi", "temperature": -Infinity}', None),
    ("overflow-float", '{"model": "chat", "input": "hi", "temperature": 1e999}', "temperature"),
    ("huge-int", body(max_output_tokens=10**30), "max_output_tokens"),
    ("huge-int-in-extra", body(input=[item(extra=[1, -(10**25)])]), "input[0].extra"),
    ("lone-surrogate", '{"model": "chat", "input": "\\ud800"}', None),
    # duplicate keys: a proxy reading the first and this server the last would disagree
    ("duplicate-model", '{"model": "chat", "model": "other", "input": "hi"}', None),
    ("duplicate-nested", '{"model": "chat", "input": [{"role": "user", "content": "a", "content": "b"}]}', None),
    # sizes: OpenAI's 128 tools, this server's other limits (made small for the test)
    ("129-tools", body(tools=[fn(f"f{i}") for i in range(129)]), "tools"),
    ("10000-tools", body(tools=[fn(f"f{i}") for i in range(10_000)]), "tools"),
    (
        "namespace-129",
        body(tools=[{"type": "namespace", "name": "n", "tools": [fn(f"f{i}") for i in range(129)]}]),
        "tools[0].tools",
    ),
    (
        "too-many-functions",
        body(
            tools=[
                {"type": "namespace", "name": f"n{j}", "tools": [fn(f"f{i}") for i in range(128)]}
                for j in range(5)
            ]
        ),
        "tools",
    ),
    ("too-many-items", body(input=[item()] * 51), "input"),
    ("long-string", body(input=[item(content="x" * 5000)]), "input[0].content"),
    ("long-instructions", body(instructions="x" * 5000), "instructions"),
    (
        "schema-properties",
        body(tools=[fn(parameters={"type": "object", "properties": {f"p{i}": {} for i in range(21)}})]),
        "tools[0].parameters",
    ),
    ("schema-enum", body(tools=[fn(parameters={"enum": list(range(31))})]), "tools[0].parameters"),
    (
        "schema-names",
        body(text={"format": {"type": "json_schema", "name": "o", "schema": {"$defs": {"d" * 700: {}}}}}),
        "text.format.schema",
    ),
    ("strict-nesting", body(tools=[fn(parameters=schema_nested(11), strict=True)]), "tools[0].parameters"),
    ("bad-pattern", body(tools=[fn(parameters={"type": "string", "pattern": "("})]), "tools[0].parameters"),
    ("dangling-local-ref", body(tools=[fn(parameters={"$ref": "#/$defs/missing"})]), "tools[0].parameters"),
    ("penalty", body(presence_penalty=0.5), "presence_penalty"),
    ("body-array", "[1, 2]", None),
    ("body-null", "null", None),
    ("body-string", '"hi"', None),
]


async def _bad_request(response: Any, param: str | None) -> dict[str, Any]:
    assert response.status_code == 400, response.text[:500]
    payload: dict[str, Any] = response.json()
    check_error_body(payload)
    error: dict[str, Any] = payload["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    return error


@pytest.mark.parametrize(("content", "param"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
async def test_hostile_create_body_is_a_400(make_app, content: str, param: str | None) -> None:
    app = await make_app(MODELS, limits=SMALL_LIMITS)
    await _bad_request(await app.http.post("/v1/responses", content=content, headers=AUTH), param)


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (json.dumps({"input": [item(type={"a": 1})]}), "input[0].type"),
        (json.dumps({"input": [item(extra="@")]}).replace('"@"', nested(150)), "input[0].extra"),
        (json.dumps({"tools": [fn(f"f{i}") for i in range(129)]}), "tools"),
        (json.dumps({"tool_choice": {"type": [1]}}), "tool_choice.type"),
        ('{"input": "a", "input": "b"}', None),
    ],
    ids=["object-type", "deep", "tools", "choice", "duplicate"],
)
async def test_hostile_input_tokens_body_is_a_400(make_app, content: str, param: str | None) -> None:
    app = await make_app(MODELS, limits=SMALL_LIMITS)
    await _bad_request(await app.http.post("/v1/responses/input_tokens", content=content, headers=AUTH), param)


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (json.dumps({"items": [item(type={"a": 1})]}), "items[0].type"),
        (json.dumps({"items": [item(type=[1])]}), "items[0].type"),
        (json.dumps({"items": [item(content=[{"type": {"a": 1}}])]}), "items[0].content[0]"),
        (json.dumps({"items": [item(extra="@")]}).replace('"@"', nested(250)), "items[0].extra"),
        (json.dumps({"metadata": {"k": "@"}}).replace('"@"', nested(80)), "metadata"),
    ],
    ids=["object-type", "array-type", "part-type", "deep", "deep-metadata"],
)
async def test_hostile_conversation_items_are_a_400(make_app, content: str, param: str | None) -> None:
    app = await make_app(MODELS)
    await _bad_request(await app.http.post("/v1/conversations", content=content, headers=AUTH), param)
    created = await app.client().conversations.create()
    added = await app.http.post(f"/v1/conversations/{created.id}/items", content=content, headers=AUTH)
    if "items" in content:
        await _bad_request(added, param)


async def test_deep_but_within_limits_is_served_and_stored(make_app) -> None:
    """Nesting up to the limit goes through the model, the store and the replay (orjson writes it)."""
    app = await make_app(MODELS)
    deep = json.loads(nested(58))
    response = await app.client().responses.create(
        model="chat", input=[{"role": "user", "content": "hi", "extra": deep}], metadata={"k": "v"}
    )
    assert response.status == "completed"
    items = await app.client().responses.input_items.list(response.id)
    assert items.data[0].model_extra is not None and items.data[0].model_extra["extra"] == deep


async def test_null_means_the_default(make_app) -> None:
    app = await make_app(MODELS)
    content = body(tool_choice=None, tools=None, presence_penalty=None, frequency_penalty=0, temperature=None)
    response = await app.http.post("/v1/responses", content=content, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["tool_choice"] == "auto" and response.json()["tools"] == []
    counted = await app.http.post(
        "/v1/responses/input_tokens", content=body(tool_choice=None, tools=None), headers=AUTH
    )
    assert counted.status_code == 200, counted.text


async def test_a_refused_body_does_not_hold_up_another_tenant(make_app) -> None:
    app = await make_app(MODELS)
    refused = await app.http.post(
        "/v1/responses", content=body(tools=[fn(f"f{i}") for i in range(10_000)]), headers=AUTH
    )
    assert refused.status_code == 400
    served = await app.client(KEY_B).responses.create(model="chat", input="hi")
    assert served.output_text == "Hello there."


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/responses", "POST"),
        ("PUT", "/v1/responses/resp_1", "DELETE, GET, HEAD"),
        ("PATCH", "/v1/conversations/conv_1", "DELETE, GET, HEAD, POST"),
        ("DELETE", "/v1/models", "GET, HEAD"),
    ],
)
async def test_405_names_the_allowed_methods(make_app, method: str, path: str, allowed: str) -> None:
    app = await make_app(MODELS)
    response = await app.http.request(method, path, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    check_error_body(response.json())
