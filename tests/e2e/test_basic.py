"""Plain text answers through the SDK: create, raw stream, the stream helper, token limits (§10 rows 1-3, 15)."""

from __future__ import annotations

import json

import openai
import pytest
from support.events import check_response
from support.harness import scripted, stream_events
from support.openresponses import check_error_body

pytestmark = pytest.mark.asyncio

ANSWER = "The quick brown fox jumps over the lazy dog."
MODELS = [
    scripted("chat", {"text": ANSWER}),
    scripted("echo", {"echo": True}),
    scripted("refuser", {"refusal": "I can't help with that."}),
    scripted("thinker", {"reasoning": "Let me think this over.", "text": "Forty-two."}),
]


async def test_create_returns_a_full_response(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    raw = await client.responses.with_raw_response.create(model="chat", input="hi")
    assert raw.headers["x-request-id"]
    body = raw.http_response.json()
    response = check_response(body)
    assert response.output_text == ANSWER
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    message = response.output[0]
    assert message.type == "message" and message.id.startswith("msg_")
    assert body["model"] == "chat" and body["store"] is True and body["tools"] == []


async def test_echo_repeats_the_user_text(make_app) -> None:
    app = await make_app(MODELS)
    response = await app.client().responses.create(model="echo", input="say this back")
    assert response.output_text == "say this back"


async def test_raw_stream_follows_the_event_order(make_app) -> None:
    app = await make_app(MODELS)
    events, final = await stream_events(app.client(), model="chat", input="hi")
    kinds = [event["type"] for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == ANSWER
    assert final["output"][0]["content"][0]["text"] == ANSWER
    assert all("obfuscation" in e for e in events if e["type"].endswith(".delta"))


async def test_sdk_stream_iteration(make_app) -> None:
    app = await make_app(MODELS)
    stream = await app.client().responses.create(model="chat", input="hi", stream=True)
    deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
    events, final = app.last_stream()
    assert final["status"] == "completed"
    assert "".join(deltas) == ANSWER
    assert len(deltas) == sum(event["type"] == "response.output_text.delta" for event in events)


async def test_obfuscation_can_be_turned_off(make_app) -> None:
    app = await make_app(MODELS)
    events, _ = await stream_events(
        app.client(), model="chat", input="hi", stream_options={"include_obfuscation": False}
    )
    assert not any("obfuscation" in event for event in events)


async def test_stream_helper_and_final_response(make_app) -> None:
    app = await make_app(MODELS)
    texts: list[str] = []
    async with app.client().responses.stream(model="chat", input="hi") as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                texts.append(event.snapshot)
        final = await stream.get_final_response()
    _, wire = app.last_stream()
    assert final.id == wire["id"]
    assert final.output_text == ANSWER
    assert texts[-1] == ANSWER
    assert final.status == "completed"


async def test_refusal_is_streamed_as_a_refusal_part(make_app) -> None:
    app = await make_app(MODELS)
    events, final = await stream_events(app.client(), model="refuser", input="do something bad")
    assert [e["type"] for e in events if "refusal" in e["type"]] == [
        *(["response.refusal.delta"] * sum(e["type"] == "response.refusal.delta" for e in events)),
        "response.refusal.done",
    ]
    assert final["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


async def test_reasoning_comes_first_as_its_own_item(make_app) -> None:
    app = await make_app(MODELS)
    events, final = await stream_events(app.client(), model="thinker", input="meaning of life?")
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert "response.reasoning_summary_text.delta" in [event["type"] for event in events]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "Let me think this over."}]
    response = await app.client().responses.create(model="thinker", input="again?")
    assert response.output_text == "Forty-two."


async def test_max_output_tokens_makes_the_response_incomplete(make_app) -> None:
    long_text = " ".join(["word"] * 40)
    app = await make_app([scripted("long", {"text": long_text})])
    client = app.client()
    response = await client.responses.create(model="long", input="talk", max_output_tokens=16)
    check_response(json.loads(app.recorder.exchanges[-1].body))
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.max_output_tokens == 16

    events, final = await stream_events(client, model="long", input="talk", max_output_tokens=16)
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert len(final["output"][0]["content"][0]["text"]) < len(long_text)


async def test_stream_helper_raises_on_incomplete(make_app) -> None:
    app = await make_app([scripted("long", {"text": " ".join(["word"] * 40)})])
    async with app.client().responses.stream(model="long", input="talk", max_output_tokens=16) as stream:
        kinds = [event.type async for event in stream]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            await stream.get_final_response()
    assert kinds[-1] == "response.incomplete"
    assert app.last_stream()[1]["status"] == "incomplete"


async def test_models_lists_the_configured_models(make_app) -> None:
    app = await make_app(MODELS)
    models = await app.client().models.list()
    assert [model.id for model in models.data] == ["chat", "echo", "refuser", "thinker"]
    assert all(model.object == "model" for model in models.data)
    model = await app.client().models.retrieve("chat")
    assert model.id == "chat"


async def test_healthz_and_unknown_routes(make_app) -> None:
    app = await make_app(MODELS)
    health = await app.http.get("/healthz")
    assert health.status_code == 200 and health.headers["x-request-id"]
    missing = await app.http.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.headers["x-request-id"]
    check_error_body(missing.json())


async def test_request_id_is_echoed_when_sent(make_app) -> None:
    app = await make_app(MODELS)
    raw = await app.client().responses.with_raw_response.create(
        model="chat", input="hi", extra_headers={"x-request-id": "req_mine"}
    )
    assert raw.headers["x-request-id"] == "req_mine"
    assert raw.request_id == "req_mine"


async def test_keepalive_pings_are_comments_the_sdk_ignores(make_app) -> None:
    # The first token waits far longer than the keep-alive interval, so pings must fill the silence.
    app = await make_app([scripted("slow", {"text": "late answer", "delay": 0.2})], keepalive_seconds=0.01)
    client = app.client()
    stream = await client.responses.create(model="slow", input="hi", stream=True)
    kinds = [event.type async for event in stream]
    assert ": ping" in app.recorder.last_stream().comments
    events, final = app.last_stream()
    assert kinds == [event["type"] for event in events]
    assert final["output"][0]["content"][0]["text"] == "late answer"


async def test_sdk_rejects_nothing_and_raises_typed_errors(make_app) -> None:
    app = await make_app(MODELS)
    with pytest.raises(openai.NotFoundError):
        await app.client().responses.create(model="no-such-model", input="hi")


async def test_parse_with_a_pydantic_text_format(make_app) -> None:
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        celsius: int

    app = await make_app([scripted("json", {"text": '{"city": "Oslo", "celsius": 4}'})])
    parsed = await app.client().responses.parse(model="json", input="weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Oslo", celsius=4)
    body = json.loads(app.recorder.exchanges[-1].body)
    assert body["text"]["format"]["type"] == "json_schema" and body["text"]["format"]["name"] == "Weather"
    check_response(body)
