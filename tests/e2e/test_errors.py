"""HTTP errors in OpenAI's shape, and failures before and after the first token (§7, §10 rows 13-14)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from support.harness import KEY_A, scripted, stream_events
from support.openresponses import check_error_body

pytestmark = pytest.mark.asyncio

AUTH = {"Authorization": f"Bearer {KEY_A}"}
MODELS = [
    scripted("chat", {"text": "Hello there."}),
    scripted("down", {"error": {"status": 503, "message": "upstream unavailable"}}),
    scripted("busy", {"error": {"status": 429, "message": "slow down"}}),
    scripted("picky", {"error": {"status": 400, "message": "context too long"}}),
    scripted("flaky", {"text": "This answer will be cut off half way through.", "fail_after": 4}),
]


async def _error(app: Any, response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    check_error_body(body)
    return body["error"]


async def test_missing_and_wrong_keys_are_401(make_app) -> None:
    app = await make_app(MODELS)
    missing = await app.http.post("/v1/responses", json={"model": "chat", "input": "hi"})
    error = await _error(app, missing, 401)
    assert error["type"] == "invalid_request_error" and "API key" in error["message"]
    wrong_scheme = await app.http.get("/v1/models", headers={"Authorization": f"Basic {KEY_A}"})
    await _error(app, wrong_scheme, 401)
    with pytest.raises(openai.AuthenticationError) as caught:
        await app.client("sk-not-a-real-key-000").responses.create(model="chat", input="hi")
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id
    assert "sk-not-a-real-key-000" not in caught.value.body["message"]  # keys are not echoed whole
    for path in ("/v1/responses/resp_x", "/v1/responses/resp_x/input_items", "/v1/models"):
        await _error(app, await app.http.get(path), 401)
    await _error(app, await app.http.delete("/v1/responses/resp_x"), 401)


async def test_malformed_json_is_400(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.http.post(
        "/v1/responses",
        content=b'{"model": "chat", "input": ',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await _error(app, response, 400)
    not_an_object = await app.http.post("/v1/responses", json=["model", "chat"], headers=AUTH)
    await _error(app, not_an_object, 400)


async def test_body_over_the_limit_is_413(make_app) -> None:
    app = await make_app(MODELS, max_body_bytes=4096)
    big = {"model": "chat", "input": "x" * 8000}
    declared = await app.http.post("/v1/responses", json=big, headers=AUTH)
    await _error(app, declared, 413)

    async def chunks():  # no Content-Length: the limit is enforced while reading
        payload = json.dumps(big).encode()
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    streamed = await app.http.post(
        "/v1/responses", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    await _error(app, streamed, 413)
    fits = await app.http.post("/v1/responses", json={"model": "chat", "input": "small"}, headers=AUTH)
    assert fits.status_code == 200


async def test_unknown_model_is_404(make_app) -> None:
    app = await make_app(MODELS)
    with pytest.raises(openai.NotFoundError) as caught:
        await app.client().responses.create(model="gpt-9000", input="hi")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        await app.client().responses.create(model="gpt-9000", input="hi", stream=True)


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
        ({"top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({"max_output_tokens": 5}, "max_output_tokens", "integer_below_min_value"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "invalid_value"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "invalid_value"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "invalid_value"),
        ({"extra_body": {"frobnicate": True}}, "frobnicate", "unknown_parameter"),
        ({"truncation": "sometimes"}, "truncation", "invalid_value"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role", "invalid_value"),
        (
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value"),
        ({"include": ["everything"]}, "include[0]", "invalid_value"),
        ({"stream_options": {"include_obfuscation": False}}, "stream_options", None),
        ({"background": True, "store": False}, "background", None),
    ],
)
async def test_validation_errors_name_the_param(
    make_app, params: dict[str, Any], param: str, code: str | None
) -> None:
    app = await make_app(MODELS)
    request: dict[str, Any] = {"model": "chat", "input": "hi", **params}
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(**request)
    assert caught.value.param == param, caught.value.body
    assert caught.value.code == code
    assert caught.value.type == "invalid_request_error"
    check_error_body({"error": caught.value.body})


async def test_missing_model_is_400(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.http.post("/v1/responses", json={"input": "hi"}, headers=AUTH)
    error = await _error(app, response, 400)
    assert error["param"] == "model" and error["code"] == "missing_required_parameter"


async def test_newer_fields_are_accepted(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.client().responses.create(
        model="chat",
        input="hi",
        include=[],
        prompt_cache_key="thread-1",
        safety_identifier="user-1",
        extra_body={
            "context_management": [{"type": "compaction", "compact_threshold": 1000}],
            "prompt_cache_options": {"mode": "implicit"},
            "verbosity": "low",
            "client_metadata": {"x": "y"},
        },
    )
    assert response.output_text == "Hello there."
    assert response.text.verbosity == "low"
    assert response.prompt_cache_key == "thread-1" and response.safety_identifier == "user-1"


@pytest.mark.parametrize(
    ("model", "status", "error_class"),
    [
        ("down", 502, openai.InternalServerError),
        ("busy", 429, openai.RateLimitError),
        ("picky", 400, openai.BadRequestError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_error_before_the_first_token_is_an_http_error(
    make_app, model: str, status: int, error_class: type[openai.APIStatusError], stream: bool
) -> None:
    app = await make_app(MODELS)
    with pytest.raises(error_class) as caught:
        await app.client().responses.create(model=model, input="hi", stream=stream)
    assert caught.value.status_code == status
    assert caught.value.request_id
    check_error_body({"error": caught.value.body})
    assert app.recorder.exchanges[-1].content_type.startswith("application/json")


async def test_mid_stream_failure_ends_with_response_failed(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    events, final = await stream_events(client, model="flaky", input="hi")
    assert events[-1]["type"] == "response.failed"
    assert final["error"]["code"] == "server_error" and final["error"]["message"]
    assert final["output"][0]["status"] == "incomplete"  # the cut-off message is kept, marked incomplete
    assert sum(event["type"] == "response.output_text.delta" for event in events) == 4
    stored = await client.responses.retrieve(final["id"])
    assert stored.status == "failed" and stored.error is not None
    replay = await client.responses.retrieve(final["id"], stream=True)
    assert [event.type async for event in replay][-1] == "response.failed"
    app.last_stream()

    async with client.responses.stream(model="flaky", input="hi") as helper:
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            await helper.get_final_response()
    assert app.last_stream()[1]["status"] == "failed"


async def test_mid_stream_failure_without_streaming(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.client().responses.create(model="flaky", input="hi")
    assert response.status == "failed" and response.error is not None
    assert (await app.client().responses.retrieve(response.id)).status == "failed"


async def test_cancel_of_a_foreground_response_is_400(make_app) -> None:
    app = await make_app(MODELS)
    created = await app.client().responses.create(model="chat", input="hi")
    with pytest.raises(openai.BadRequestError):
        await app.client().responses.cancel(created.id)
    with pytest.raises(openai.NotFoundError):
        await app.client().responses.cancel("resp_missing")


async def test_every_answer_carries_a_request_id_and_errors_have_four_keys(make_app) -> None:
    app = await make_app(MODELS, max_body_bytes=4096)
    created = await app.http.post("/v1/responses", json={"model": "chat", "input": "hi"}, headers=AUTH)
    response_id = created.json()["id"]
    answers = {
        "created": (created, 200),
        "streamed": (
            await app.http.post(
                "/v1/responses", json={"model": "chat", "input": "hi", "stream": True}, headers=AUTH
            ),
            200,
        ),
        "retrieved": (await app.http.get(f"/v1/responses/{response_id}", headers=AUTH), 200),
        "items": (await app.http.get(f"/v1/responses/{response_id}/input_items", headers=AUTH), 200),
        "models": (await app.http.get("/v1/models", headers=AUTH), 200),
        "health": (await app.http.get("/healthz"), 200),
        "deleted": (await app.http.delete(f"/v1/responses/{response_id}", headers=AUTH), 200),
        "gone": (await app.http.get(f"/v1/responses/{response_id}", headers=AUTH), 404),
        "no key": (await app.http.get("/v1/models"), 401),
        "bad json": (await app.http.post("/v1/responses", content=b"{", headers=AUTH), 400),
        "too big": (await app.http.post("/v1/responses", content=b"x" * 5000, headers=AUTH), 413),
        "no model": (
            await app.http.post("/v1/responses", json={"model": "nope", "input": "x"}, headers=AUTH),
            404,
        ),
        "bad param": (await app.http.post("/v1/responses", json={"model": "chat", "top_p": 9}, headers=AUTH), 400),
        "no route": (await app.http.get("/v2/everything", headers=AUTH), 404),
        "wrong method": (await app.http.put("/v1/responses", headers=AUTH), 405),
        "upstream down": (
            await app.http.post("/v1/responses", json={"model": "down", "input": "x"}, headers=AUTH),
            502,
        ),
    }
    for name, (response, status) in answers.items():
        assert response.status_code == status, (name, response.text)
        assert response.headers.get("x-request-id", "").startswith("req_"), name
        if status >= 400:
            check_error_body(response.json())
