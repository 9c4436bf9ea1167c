"""The Conversations API and the `conversation` parameter of create, on SQLite and PostgreSQL (§1, §10 row 16)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from support.events import check_response
from support.harness import KEY_B, scripted, stream_events
from support.openresponses import check_error_body

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
LONG_TEXT = " ".join(f"word{i}" for i in range(40))
MODELS = [
    scripted("turns", {"text": "First answer."}, {"text": "Second answer."}, {"text": "Third answer."}),
    scripted(
        "calls",
        {
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Rome"}},
            ]
        },
        {"text": "Paris is sunny, Rome is rainy."},
    ),
    scripted("long", {"text": LONG_TEXT}),
    scripted("cut", {"text": LONG_TEXT, "fail_after": 3}),
    scripted("down", {"error": {"status": 500, "message": "upstream down"}}),
]


def summary(items: list[Any]) -> list[str]:
    """Items (SDK objects) as short strings: `role: text`, `call name`, `output text`."""
    out: list[str] = []
    for item in items:
        if item.type == "message":
            part = item.content[0]
            out.append(f"{item.role}: {part.text}")
        elif item.type == "function_call":
            out.append(f"call {item.name}")
        elif item.type == "function_call_output":
            out.append(f"output {item.output}")
        else:
            out.append(item.type)
    return out


async def all_items(client: openai.AsyncOpenAI, conversation_id: str) -> list[str]:
    return summary([item async for item in client.conversations.items.list(conversation_id, order="asc")])


async def test_conversation_lifecycle(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    created = await client.conversations.create(metadata={"topic": "weather"})
    raw = (await client.conversations.with_raw_response.retrieve(created.id)).http_response.json()
    assert list(raw) == ["id", "object", "created_at", "metadata"]
    assert raw == {
        "id": created.id,
        "object": "conversation",
        "created_at": created.created_at,
        "metadata": {"topic": "weather"},
    }
    assert created.id.startswith("conv_")

    updated = await client.conversations.update(created.id, metadata={"topic": "rain", "k": "v"})
    assert updated.metadata == {"topic": "rain", "k": "v"}
    assert (await client.conversations.retrieve(created.id)).metadata == {"topic": "rain", "k": "v"}

    deleted = await client.conversations.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "conversation.deleted", True)
    for call in (
        client.conversations.retrieve(created.id),
        client.conversations.delete(created.id),
        client.conversations.update(created.id, metadata={}),
        client.conversations.items.create(created.id, items=[{"role": "user", "content": "hi"}]),
        client.responses.create(model="turns", input="hi", conversation=created.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await call
        check_error_body(caught.value.response.json())
        assert caught.value.body["message"] == f"Conversation with id '{created.id}' not found."
        assert caught.value.param is None


async def test_responses_append_their_turns_in_order(make_app, backend: str) -> None:
    """Reference §10 row 16."""
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    first = await client.responses.create(model="turns", input="one", conversation=conversation.id)
    assert first.output_text == "First answer."
    assert first.conversation is not None and first.conversation.id == conversation.id
    check_response(json.loads(app.recorder.exchanges[-1].body))
    assert await all_items(client, conversation.id) == ["user: one", "assistant: First answer."]

    second = await client.responses.create(model="turns", input="two", conversation={"id": conversation.id})
    # The scripted model answers by how many assistant turns it was shown: it saw the first one.
    assert second.output_text == "Second answer."
    assert second.conversation is not None and second.conversation.id == conversation.id
    assert second.previous_response_id is None
    expected = ["user: one", "assistant: First answer.", "user: two", "assistant: Second answer."]
    assert await all_items(client, conversation.id) == expected
    # The default order is newest first; the stored items carry the response's own ids.
    newest_first = await client.conversations.items.list(conversation.id)
    assert summary(newest_first.data) == list(reversed(expected))
    assert newest_first.data[0].id == second.output[0].id
    # The response's input items are its own input only.
    assert summary([item async for item in client.responses.input_items.list(second.id)]) == ["user: two"]


async def test_initial_items_come_before_the_input(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create(
        items=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": "zero"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Zeroth."}]},
        ]
    )
    response = await client.responses.create(model="turns", input="one", conversation=conversation.id)
    assert response.output_text == "Second answer."
    assert await all_items(client, conversation.id) == [
        "developer: Answer briefly.",
        "user: zero",
        "assistant: Zeroth.",
        "user: one",
        "assistant: Second answer.",
    ]


async def test_a_streamed_turn_is_appended_and_its_stream_validated(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    _, final = await stream_events(client, model="turns", input="one", conversation=conversation.id)
    assert final["conversation"] == {"id": conversation.id}
    assert await all_items(client, conversation.id) == ["user: one", "assistant: First answer."]
    async with client.responses.stream(model="turns", input="two", conversation=conversation.id) as stream:
        helper_final = await stream.get_final_response()
    app.last_stream()
    assert helper_final.output_text == "Second answer."
    assert len(await all_items(client, conversation.id)) == 4


def test_items_are_in_the_conversation_when_the_terminal_event_arrives(live_server) -> None:
    live = live_server(MODELS)
    client = live.client()
    conversation = client.conversations.create()
    seen_at_terminal: list[str] = []
    for event in client.responses.create(model="turns", input="one", conversation=conversation.id, stream=True):
        if event.type == "response.completed":
            # Asked on another connection while this stream is still open.
            seen_at_terminal = summary(list(client.conversations.items.list(conversation.id, order="asc")))
    live.last_stream()
    assert seen_at_terminal == ["user: one", "assistant: First answer."]


async def test_function_calls_round_trip_inside_a_conversation(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    asked = await client.responses.create(
        model="calls", input="Weather in Paris and Rome?", tools=[WEATHER], conversation=conversation.id
    )
    calls = [item for item in asked.output if item.type == "function_call"]
    assert len(calls) == 2
    # The calls are in the conversation unanswered: a turn without their outputs is refused.
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="calls", input="well?", tools=[WEATHER], conversation=conversation.id)
    assert caught.value.body["message"] == f"No tool output found for function call {calls[0].call_id}."
    # An output for a call the conversation does not hold is refused too.
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="calls",
            input=[{"type": "function_call_output", "call_id": "call_unknown", "output": "?"}],
            tools=[WEATHER],
            conversation=conversation.id,
        )
    assert caught.value.body["message"] == "No tool call found for function call output with call_id call_unknown."
    outputs = [
        {"type": "function_call_output", "call_id": call.call_id, "output": weather}
        for call, weather in zip(calls, ("sunny", "rainy"), strict=True)
    ]
    _, final = await stream_events(
        client, model="calls", input=outputs, tools=[WEATHER], conversation=conversation.id
    )
    assert final["output"][0]["content"][0]["text"] == "Paris is sunny, Rome is rainy."
    assert await all_items(client, conversation.id) == [
        "user: Weather in Paris and Rome?",
        "call get_weather",
        "call get_weather",
        "output sunny",
        "output rainy",
        "assistant: Paris is sunny, Rome is rainy.",
    ]
    stored = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert [item.call_id for item in stored[1:3]] == [call.call_id for call in calls]
    assert [item.id for item in stored[1:3]] == [call.id for call in calls]


async def test_paging_through_items(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    texts = [f"m{n}" for n in range(7)]
    conversation = await client.conversations.create(items=[{"role": "user", "content": text} for text in texts])
    first = await client.conversations.items.list(conversation.id, limit=3, order="asc")
    assert summary(first.data) == [f"user: {text}" for text in texts[:3]]
    assert first.has_more is True and first.first_id == first.data[0].id and first.last_id == first.data[-1].id
    # The SDK follows `last_id` until `has_more` is false, in either order.
    walked = [item async for item in client.conversations.items.list(conversation.id, limit=3, order="asc")]
    assert summary(walked) == [f"user: {text}" for text in texts]
    walked = [item async for item in client.conversations.items.list(conversation.id, limit=2)]
    assert summary(walked) == [f"user: {text}" for text in reversed(texts)]
    last = await client.conversations.items.list(conversation.id, limit=3, order="asc", after=walked[1].id)
    assert summary(last.data) == ["user: m6"] and last.has_more is False
    for params, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "msg_unknown"}, "after"),
        ({"include": ["bogus"]}, "include"),
    ):
        response = await app.http.get(
            f"/v1/conversations/{conversation.id}/items", params=params, headers=app.auth_headers()
        )
        assert response.status_code == 400, params
        check_error_body(response.json())
        assert response.json()["error"]["param"] == param


async def test_items_are_added_read_and_deleted(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create(items=[{"role": "user", "content": "zero"}])
    added = await client.conversations.items.create(
        conversation.id,
        items=[
            {"role": "user", "content": "one"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Two."}]},
        ],
    )
    raw = app.recorder.exchanges[-1].body
    assert list(json.loads(raw)) == ["object", "data", "first_id", "last_id", "has_more"]
    assert summary(added.data) == ["user: one", "assistant: Two."]
    assert (added.first_id, added.last_id, added.has_more) == (added.data[0].id, added.data[1].id, False)
    assert [item.id[:4] for item in added.data] == ["msg_", "msg_"]

    item = await client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert summary([item]) == ["user: one"] and item.status == "completed"
    after_delete = await client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
    assert after_delete.id == conversation.id and after_delete.object == "conversation"
    assert await all_items(client, conversation.id) == ["user: zero", "assistant: Two."]
    for call in (
        client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id),
        client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await call
        assert caught.value.body["message"] == f"Item with id '{added.data[0].id}' not found."
    # An id the conversation already holds is refused, in a new item or as a response's input.
    taken = added.data[1].id
    duplicate = {"id": taken, "type": "message", "role": "user", "content": "again"}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.conversations.items.create(conversation.id, items=[duplicate])
    assert caught.value.body["message"] == f"Duplicate item found with id {taken}."
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="turns", input=[duplicate], conversation=conversation.id)
    assert caught.value.body["message"] == f"Duplicate item found with id {taken}."
    assert await all_items(client, conversation.id) == ["user: zero", "assistant: Two."]


async def test_bad_bodies_are_refused_like_response_input(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    conversation = await client.conversations.create()
    too_many = [{"role": "user", "content": str(n)} for n in range(21)]
    cases: list[tuple[Any, str, str | None]] = [
        (client.conversations.create(items=too_many), "items", "array_above_max_length"),
        (client.conversations.items.create(conversation.id, items=too_many), "items", "array_above_max_length"),
        (client.conversations.items.create(conversation.id, items=[]), "items", "array_below_min_length"),
        (client.conversations.create(metadata={f"k{n}": "v" for n in range(17)}), "metadata", "invalid_value"),
        (client.conversations.update(conversation.id, metadata={"k": "v" * 513}), "metadata", "invalid_value"),
        (
            client.conversations.create(
                items=[{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]
            ),
            "items[0].content[0]",
            "invalid_value",
        ),
        (
            client.conversations.create(items=[{"id": "rs_1", "role": "user", "content": "x"}]),
            "items[0].id",
            "invalid_id_prefix",
        ),
        (
            client.conversations.items.create(conversation.id, items=[{"type": "item_reference", "id": "msg_1"}]),
            "items[0]",
            "invalid_value",
        ),
        (client.conversations.create(extra_body={"bogus": 1}), "bogus", "unknown_parameter"),
    ]
    for call, param, code in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            await call
        check_error_body(caught.value.response.json())
        assert (caught.value.param, caught.value.code) == (param, code), caught.value.body
    missing = await app.http.post(f"/v1/conversations/{conversation.id}", json={}, headers=app.auth_headers())
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_required_parameter"
    assert missing.json()["error"]["param"] == "metadata"


async def test_another_key_cannot_see_or_use_a_conversation(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    mine = app.client()
    theirs = app.client(KEY_B)
    conversation = await mine.conversations.create(items=[{"role": "user", "content": "secret"}])
    item_id = (await mine.conversations.items.list(conversation.id)).data[0].id
    for call in (
        theirs.conversations.retrieve(conversation.id),
        theirs.conversations.update(conversation.id, metadata={"k": "v"}),
        theirs.conversations.delete(conversation.id),
        theirs.conversations.items.list(conversation.id),
        theirs.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}]),
        theirs.conversations.items.retrieve(item_id, conversation_id=conversation.id),
        theirs.conversations.items.delete(item_id, conversation_id=conversation.id),
        theirs.responses.create(model="turns", input="x", conversation=conversation.id),
        theirs.responses.input_tokens.count(model="turns", input="x", conversation=conversation.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await call
    assert await all_items(mine, conversation.id) == ["user: secret"]
    assert (await mine.conversations.retrieve(conversation.id)).metadata == {}


async def test_only_finished_turns_are_appended(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    # Failed before the first token: a plain HTTP error, nothing added.
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="down", input="one", conversation=conversation.id)
    # Failed mid-stream: `response.failed`, nothing added, so the same input can be sent again.
    _, failed = await stream_events(client, model="cut", input="one", conversation=conversation.id)
    assert failed["status"] == "failed"
    assert await all_items(client, conversation.id) == []
    # Cut off at max_output_tokens: incomplete, but the model's turn, so it is added (marked incomplete).
    _, cut = await stream_events(
        client, model="long", input="one", conversation=conversation.id, max_output_tokens=16
    )
    assert cut["status"] == "incomplete"
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert [(item.type, item.status) for item in items] == [("message", "completed"), ("message", "incomplete")]


async def test_background_and_unstored_responses_append_too(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    queued = await client.responses.create(
        model="turns", input="one", conversation=conversation.id, background=True
    )
    assert queued.status == "queued" and queued.conversation is not None
    for _ in range(500):
        if (await client.responses.retrieve(queued.id)).status == "completed":
            break
        await asyncio.sleep(0.01)
    assert await all_items(client, conversation.id) == ["user: one", "assistant: First answer."]
    # `store: false` governs the response object, not the conversation the client named.
    unstored = await client.responses.create(model="turns", input="two", conversation=conversation.id, store=False)
    assert unstored.output_text == "Second answer."
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)
    assert len(await all_items(client, conversation.id)) == 4


async def test_conversation_cannot_be_combined_with_previous_response_id(make_app) -> None:
    app = await make_app(MODELS)
    client = app.client()
    first = await client.responses.create(model="turns", input="one")
    conversation = await client.conversations.create()
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(
            model="turns", input="two", previous_response_id=first.id, conversation=conversation.id
        )
    assert await all_items(client, conversation.id) == []
