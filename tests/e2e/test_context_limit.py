"""The stored history a request continues from is capped in bytes (`max_context_bytes`), on SQLite and PostgreSQL.

The scripted model answers "Saw N." when its context holds N earlier assistant turns, so each test can
tell how much history the model was given.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support.harness import scripted, stream_events
from support.openresponses import check_error_body

from respgate.storage.retention import DAY, Retention

pytestmark = pytest.mark.asyncio

CAP = 4096
# One stored turn is this input plus a short answer: about 1.5 KB of JSON, so two fit the cap and three do not.
PADDING = "p" * 1300
MODELS = [scripted("counting", *({"text": f"Saw {n}."} for n in range(12)))]
WORDING = "Your input exceeds the context window of this model. Please adjust your input and try again."


async def build_chain(client: openai.AsyncOpenAI, turns: int) -> list[str]:
    ids: list[str] = []
    for _ in range(turns):
        previous = {"previous_response_id": ids[-1]} if ids else {}
        created = await client.responses.create(model="counting", input=PADDING, truncation="auto", **previous)
        ids.append(created.id)
    return ids


def assert_context_length_exceeded(error: openai.BadRequestError) -> None:
    check_error_body(error.response.json())
    assert error.body == {
        "message": WORDING,
        "type": "invalid_request_error",
        "param": "input",
        "code": "context_length_exceeded",
    }


async def test_a_chain_over_the_cap_is_refused_unless_truncation_is_auto(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend, max_context_bytes=CAP)
    client = app.client()
    ids = await build_chain(client, 4)
    within = await client.responses.create(model="counting", input="next", previous_response_id=ids[1])
    assert within.output_text == "Saw 2."
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="counting", input="next", previous_response_id=ids[-1])
    assert_context_length_exceeded(caught.value)
    # Counting input tokens builds the same context, so it is refused the same way.
    with pytest.raises(openai.BadRequestError) as counted:
        await client.responses.input_tokens.count(model="counting", input="next", previous_response_id=ids[-1])
    assert_context_length_exceeded(counted.value)

    # With "auto" the oldest whole responses are left out: the model sees the newest two.
    kept = await client.responses.create(
        model="counting", input="next", previous_response_id=ids[-1], truncation="auto"
    )
    assert kept.output_text == "Saw 2." and kept.truncation == "auto"
    _, streamed = await stream_events(
        client, model="counting", input="next", previous_response_id=ids[-1], truncation="auto"
    )
    assert streamed["output"][0]["content"][0]["text"] == "Saw 2."


async def test_a_conversation_over_the_cap_keeps_its_newest_items_with_auto(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend, max_context_bytes=CAP)
    client = app.client()
    conversation = await client.conversations.create()
    for _ in range(3):
        await client.responses.create(
            model="counting", input=PADDING, conversation=conversation.id, truncation="auto"
        )
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="counting", input="next", conversation=conversation.id)
    assert_context_length_exceeded(caught.value)
    # Items are left out one by one, oldest first: the last two turns fit, and so does the answer before them.
    kept = await client.responses.create(
        model="counting", input="next", conversation=conversation.id, truncation="auto"
    )
    assert kept.output_text == "Saw 3."
    # Nothing was added for the refused turn; the answered one was.
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert len(items) == 8


async def test_references_count_as_the_items_they_name(make_app, backend: str) -> None:
    """A few bytes of references must not multiply a large history past the cap."""
    app = await make_app(MODELS, backend=backend, max_context_bytes=CAP)
    client = app.client()
    first = await client.responses.create(model="counting", input=PADDING)
    item_id = (await client.responses.input_items.list(first.id)).data[0].id
    reference: dict[str, Any] = {"type": "item_reference", "id": item_id}
    once = await client.responses.create(model="counting", input=[reference], previous_response_id=first.id)
    assert once.output_text == "Saw 1."
    for truncation in ("disabled", "auto"):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model="counting", input=[reference] * 5, previous_response_id=first.id, truncation=truncation
            )
        assert_context_length_exceeded(caught.value)
    # Under "auto", older history makes room for a reference that fits (the referenced item included).
    second = await client.responses.create(
        model="counting", input=PADDING, previous_response_id=first.id, truncation="auto"
    )
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="counting", input=[reference], previous_response_id=second.id)
    assert_context_length_exceeded(caught.value)
    kept = await client.responses.create(
        model="counting", input=[reference], previous_response_id=second.id, truncation="auto"
    )
    assert kept.output_text == "Saw 2."


async def test_tool_outputs_whose_calls_were_truncated_away_are_left_out_too(make_app, backend: str) -> None:
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    models = [
        scripted(
            "calls", {"tool_calls": [{"name": "get_weather", "arguments": {"city": PADDING}}]}, {"text": "Done."}
        )
    ]
    app = await make_app(models, backend=backend, max_context_bytes=CAP)
    client = app.client()
    asked = await client.responses.create(model="calls", input="weather?", tools=[weather])
    output = {"type": "function_call_output", "call_id": asked.output[0].call_id, "output": PADDING * 2}
    answered = await client.responses.create(
        model="calls", input=[output], previous_response_id=asked.id, tools=[weather]
    )
    assert answered.output_text == "Done."
    # The call's response no longer fits beside the answer's ...
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="calls", input="and now?", previous_response_id=answered.id, tools=[weather]
        )
    assert_context_length_exceeded(caught.value)
    # ... and without it, the output would answer no call: it is left out with it.
    kept = await client.responses.create(
        model="calls", input="and now?", previous_response_id=answered.id, tools=[weather], truncation="auto"
    )
    assert kept.status == "completed"


async def test_the_cap_defaults_to_the_body_limit(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend, max_body_bytes=CAP)
    client = app.client()
    ids = await build_chain(client, 3)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="counting", input="next", previous_response_id=ids[-1])
    assert_context_length_exceeded(caught.value)


async def test_a_chain_through_a_deleted_response_starts_after_the_gap_with_auto(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    ids = await build_chain(client, 3)
    await client.responses.delete(ids[0])
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="counting", input="next", previous_response_id=ids[-1])
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.body["message"] == f"Previous response with id '{ids[0]}' not found."
    kept = await client.responses.create(
        model="counting", input="next", previous_response_id=ids[-1], truncation="auto"
    )
    assert kept.output_text == "Saw 2."


async def test_a_chain_whose_oldest_responses_were_purged(make_app, stores, backend: str) -> None:
    """Purged like deleted: refused naming the missing response, or with "auto" answered from what is left."""
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    ids = await build_chain(client, 3)
    engine = create_async_engine(stores.urls[backend])
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE responses SET created_at = created_at - :age WHERE id = :id"),
                {"age": 31 * DAY, "id": ids[0]},
            )
    finally:
        await engine.dispose()
    assert await Retention(app.gateway.store, days=30).purge_once() >= 1
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(ids[0])
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="counting", input="next", previous_response_id=ids[-1])
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.body["message"] == f"Previous response with id '{ids[0]}' not found."
    kept = await client.responses.create(
        model="counting", input="next", previous_response_id=ids[-1], truncation="auto"
    )
    assert kept.output_text == "Saw 2."
