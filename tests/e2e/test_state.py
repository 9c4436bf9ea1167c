"""Stored state on SQLite and PostgreSQL: chaining, retrieve, replay, delete, input items, owners (§10 rows 6-10, 12)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from support.events import check_response, check_stream
from support.harness import KEY_A, KEY_B, scripted, stream_events
from support.openresponses import check_error_body
from support.sse import parse_sse_text

pytestmark = pytest.mark.asyncio

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
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
]


async def test_chaining_rebuilds_the_context(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    first = await client.responses.create(model="turns", input="one", instructions="Be brief.")
    second = await client.responses.create(model="turns", input="two", previous_response_id=first.id)
    assert second.output_text == "Second answer."
    assert second.previous_response_id == first.id
    assert second.instructions is None  # instructions are not inherited
    # Stored before the terminal event: a stream's response can be chained as soon as it ends.
    _, third = await stream_events(client, model="turns", input="three", previous_response_id=second.id)
    fourth = await client.responses.create(model="turns", input="four", previous_response_id=third["id"])
    assert third["output"][0]["content"][0]["text"] == "Third answer."
    assert fourth.output_text == "Third answer."  # the script's last turn repeats


async def test_retrieve_returns_the_stored_response(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    created = await client.responses.create(model="turns", input="one", metadata={"k": "v"})
    created_body = app.recorder.exchanges[-1].body
    retrieved = await client.responses.retrieve(created.id)
    assert app.recorder.exchanges[-1].body == created_body
    check_response(json.loads(app.recorder.exchanges[-1].body))
    assert retrieved.metadata == {"k": "v"}
    with_include = await client.responses.retrieve(
        created.id, include=["reasoning.encrypted_content", "message.output_text.logprobs"]
    )
    assert app.recorder.exchanges[-1].path == f"/v1/responses/{created.id}"
    assert with_include.id == created.id
    bad = await app.http.get(
        f"/v1/responses/{created.id}",
        params={"include[]": "everything"},
        headers={"Authorization": f"Bearer {KEY_A}"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "include"


def without_obfuscation(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in event.items() if key != "obfuscation"} for event in events]


async def test_stream_replay_starts_at_created(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    events, final = await stream_events(client, model="turns", input="one")
    replay = await client.responses.retrieve(final["id"], stream=True)
    kinds = [event.type async for event in replay]
    replayed, replayed_final = app.last_stream()
    assert replayed_final == final
    # The same items, each part's text in one delta.
    done = [event["item"] for event in replayed if event["type"] == "response.output_item.done"]
    assert done == [event["item"] for event in events if event["type"] == "response.output_item.done"]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]

    # A JSON-created response can be replayed as a stream too.
    created = await client.responses.create(model="turns", input="one")
    async with client.responses.with_streaming_response.retrieve(created.id, stream=True) as raw:
        lines = [line async for line in raw.iter_lines()]
    assert (
        app.recorder.last_stream().events and check_stream(app.recorder.last_stream().events)["id"] == created.id
    )
    assert lines


async def test_starting_after_raw_and_through_the_helper(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    _, final = await stream_events(client, model="turns", input="one")
    headers = {"Authorization": f"Bearer {KEY_A}"}
    whole = await app.http.get(f"/v1/responses/{final['id']}", params={"stream": "true"}, headers=headers)
    events = parse_sse_text(whole.text).events
    assert check_stream(events) == final
    k = 3
    raw = await app.http.get(
        f"/v1/responses/{final['id']}", params={"stream": "true", "starting_after": str(k)}, headers=headers
    )
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    tail = parse_sse_text(raw.text).events
    assert without_obfuscation(tail) == without_obfuscation(events[k + 1 :])

    seen: list[int] = []
    async with client.responses.stream(response_id=final["id"], starting_after=k) as stream:
        async for event in stream:
            seen.append(event.sequence_number)
        replayed = await stream.get_final_response()
    assert seen == list(range(k + 1, len(events)))
    assert replayed.id == final["id"] and replayed.output_text == "First answer."
    # The SDK asks for the whole replay and filters client-side: the wire starts at response.created.
    wire, _ = app.last_stream()
    assert without_obfuscation(wire) == without_obfuscation(events)


async def test_delete_then_retrieve_is_404(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    created = await client.responses.create(model="turns", input="one")
    assert await client.responses.delete(created.id) is None
    assert app.recorder.exchanges[-1].status == 200
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve(created.id)
    assert caught.value.body["message"] == f"Response with id '{created.id}' not found."
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list(created.id)
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model="turns", input="two", previous_response_id=created.id)


async def test_input_items_paging(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    sent = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "one"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]},
    ]
    created = await client.responses.create(model="turns", input=sent)
    everything = [item async for item in client.responses.input_items.list(created.id, limit=1)]
    ascending = [item async for item in client.responses.input_items.list(created.id, limit=1, order="asc")]
    assert [item.content[0].text for item in everything] == ["two", "one", "sys"]  # default order is desc
    assert [item.id for item in ascending] == [item.id for item in reversed(everything)]
    assert all(item.id.startswith("msg_") for item in everything)
    assert len({item.id for item in everything}) == 3

    page = await client.responses.input_items.list(created.id, limit=2)
    assert page.has_more is True and page.first_id == everything[0].id and page.last_id == everything[1].id
    rest = await client.responses.input_items.list(created.id, limit=2, after=page.last_id)
    assert rest.has_more is False and [item.id for item in rest.data] == [everything[2].id]

    string_input = await client.responses.create(model="turns", input="plain")
    listed = await client.responses.input_items.list(string_input.id)
    item = listed.data[0].to_dict()
    assert item["type"] == "message" and item["role"] == "user"
    assert item["content"] == [{"type": "input_text", "text": "plain"}]

    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.input_items.list(created.id, limit=101)
    assert caught.value.param == "limit"


async def test_store_false_cannot_be_retrieved_or_chained(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    unstored = await client.responses.create(model="turns", input="one", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="turns", input="two", previous_response_id=unstored.id)
    assert caught.value.code == "previous_response_not_found"
    _, final = await stream_events(client, model="turns", input="one", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(final["id"], stream=True)


async def test_responses_are_visible_only_to_their_key(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    alice, bob = app.client(KEY_A), app.client(KEY_B)
    created = await alice.responses.create(model="turns", input="one")
    for call in (
        lambda: bob.responses.retrieve(created.id),
        lambda: bob.responses.retrieve(created.id, stream=True),
        lambda: bob.responses.delete(created.id),
        lambda: bob.responses.input_items.list(created.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await call()
        check_error_body({"error": caught.value.body})
    with pytest.raises(openai.BadRequestError) as chained:
        await bob.responses.create(model="turns", input="two", previous_response_id=created.id)
    assert chained.value.code == "previous_response_not_found"
    assert (await alice.responses.retrieve(created.id)).id == created.id


async def test_unknown_previous_response(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="turns", input="hi", previous_response_id="resp_unknown")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"
    assert caught.value.body["message"] == "Previous response with id 'resp_unknown' not found."


async def test_previous_response_with_conversation_is_rejected(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    created = await client.responses.create(model="turns", input="one")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="turns", input="two", previous_response_id=created.id, conversation="conv_123"
        )
    assert caught.value.param == "previous_response_id"


def _outputs(calls: list[Any], skip: int | None = None) -> list[dict[str, Any]]:
    return [
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        for index, call in enumerate(calls)
        if index != skip
    ]


async def test_round_trip_pairing_errors_with_previous_response_id(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    first = await client.responses.create(model="calls", input="weather?", tools=[WEATHER])
    calls = first.output
    assert len(calls) == 2

    async def rejected(items: list[dict[str, Any]]) -> str:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model="calls", previous_response_id=first.id, input=items, tools=[WEATHER]
            )
        assert caught.value.param == "input" and caught.value.type == "invalid_request_error"
        assert caught.value.code is None
        return str(caught.value.body["message"])

    assert await rejected(_outputs(calls, skip=1)) == f"No tool output found for function call {calls[1].call_id}."
    orphan = {"type": "function_call_output", "call_id": "call_nope", "output": "?"}
    assert await rejected([*_outputs(calls), orphan]) == (
        "No tool call found for function call output with call_id call_nope."
    )
    echoed = [call.to_dict() for call in calls]
    assert await rejected([*echoed, *_outputs(calls)]) == f"Duplicate item found with id {calls[0].id}."

    done = await client.responses.create(
        model="calls", previous_response_id=first.id, input=_outputs(calls), tools=[WEATHER]
    )
    assert done.output_text == "Paris is sunny, Rome is rainy."


async def test_round_trip_pairing_errors_with_full_history(make_app, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    first = await client.responses.create(model="calls", input="weather?", tools=[WEATHER])
    echoed = [call.to_dict() for call in first.output]
    user = {"role": "user", "content": "weather?"}

    async def rejected(items: list[dict[str, Any]]) -> str:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="calls", input=items, tools=[WEATHER])
        assert caught.value.param == "input"
        return str(caught.value.body["message"])

    calls = first.output
    assert await rejected([user, *echoed, *_outputs(calls, skip=0)]) == (
        f"No tool output found for function call {calls[0].call_id}."
    )
    assert await rejected([user, *_outputs(calls)]) == (
        f"No tool call found for function call output with call_id {calls[0].call_id}."
    )
    assert await rejected([user, *echoed, echoed[0], *_outputs(calls)]) == (
        f"Duplicate item found with id {calls[0].id}."
    )
    done = await client.responses.create(model="calls", input=[user, *echoed, *_outputs(calls)], tools=[WEATHER])
    assert done.output_text == "Paris is sunny, Rome is rainy."


async def test_a_chain_through_a_deleted_response_is_refused(make_app, backend: str) -> None:
    """Continuing after a deleted ancestor would silently drop part of the conversation: 400 names the gap."""
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    first = await client.responses.create(model="turns", input="one")
    second = await client.responses.create(model="turns", input="two", previous_response_id=first.id)
    await client.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="turns", input="three", previous_response_id=second.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.body["message"] == f"Previous response with id '{first.id}' not found."
