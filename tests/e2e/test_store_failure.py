"""When the final write fails: the stream still ends (`response.failed`, `store_error`), the JSON answer is
a 500 logged once, and nothing half-stored is visible. The store is made to fail for real, by a trigger
that rejects marked rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from support.events import check_stream
from support.harness import raw_stream, scripted
from support.openresponses import check_error_body

pytestmark = pytest.mark.asyncio

MODELS = [scripted("turns", {"text": "First answer."}, {"text": "Second answer."})]
STORE_ERROR = frozenset({"store_error"})


@asynccontextmanager
async def rejecting(url: str, table: str, column: str, marker: str) -> AsyncIterator[None]:
    """While open, the database refuses to insert into `table` a row whose `column` contains `marker`."""
    name = f"reject_{secrets.token_hex(4)}"
    condition = f"NEW.{column} LIKE '%{marker}%'"
    engine = create_async_engine(url)
    if url.startswith("sqlite"):
        create = [
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} "
            "BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    else:
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'rejected by the test'; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    try:
        async with engine.begin() as connection:
            for statement in create:
                await connection.exec_driver_sql(statement)
        yield
        async with engine.begin() as connection:
            for statement in drop:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_stream_ends_with_response_failed(make_app, stores, backend: str, caplog) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    async with rejecting(stores.urls[backend], "responses", "input_items", "store-must-fail"):
        events = (await raw_stream(client, model="turns", input="store-must-fail")).events
    final = check_stream(events, extra_codes=STORE_ERROR)
    assert events[-1]["type"] == "response.failed"
    assert final["error"]["code"] == "store_error" and final["error"]["message"]
    # The answer was made (its items are in the stream) but not kept.
    assert final["output"][0]["content"][0]["text"] == "First answer."
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(final["id"])
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(final["id"], stream=True)
    (logged,) = errors_logged(caplog)
    assert final["id"] in logged.getMessage() and "Traceback" in logged.getMessage()


async def test_a_json_answer_is_a_logged_500(make_app, stores, backend: str, caplog) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    async with rejecting(stores.urls[backend], "responses", "input_items", "store-must-fail"):
        with pytest.raises(openai.InternalServerError) as caught:
            await client.responses.create(model="turns", input="store-must-fail")
    check_error_body(caught.value.response.json())
    assert caught.value.status_code == 500 and caught.value.code == "store_error"
    (logged,) = errors_logged(caplog)
    # Logged once, with the traceback down to the database's failure, but not its message (messages can
    # quote row values); the answer does not carry it either.
    assert "Traceback" in logged.getMessage() and "store_error" in logged.getMessage()
    assert "rejected by the test" not in logged.getMessage()
    assert "rejected by the test" not in caught.value.response.text
    # The store works again for everything else.
    assert (await client.responses.create(model="turns", input="fine")).output_text == "First answer."


async def conversation_items(client: openai.AsyncOpenAI, conversation_id: str) -> list[Any]:
    return [item async for item in client.conversations.items.list(conversation_id, order="asc")]


async def test_an_unstored_turn_is_not_added_to_its_conversation(make_app, stores, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    async with rejecting(stores.urls[backend], "responses", "input_items", "store-must-fail"):
        events = (
            await raw_stream(client, model="turns", input="store-must-fail", conversation=conversation.id)
        ).events
        with pytest.raises(openai.InternalServerError):
            await client.responses.create(model="turns", input="store-must-fail", conversation=conversation.id)
    assert check_stream(events, extra_codes=STORE_ERROR)["status"] == "failed"
    assert await conversation_items(client, conversation.id) == []


async def test_a_turn_its_conversation_refused_is_not_kept_either(make_app, stores, backend: str) -> None:
    app = await make_app(MODELS, backend=backend)
    client = app.client()
    conversation = await client.conversations.create()
    async with rejecting(stores.urls[backend], "conversation_items", "item", "append-must-fail"):
        events = (
            await raw_stream(client, model="turns", input="append-must-fail", conversation=conversation.id)
        ).events
        with pytest.raises(openai.InternalServerError):
            await client.responses.create(model="turns", input="append-must-fail", conversation=conversation.id)
    final = check_stream(events, extra_codes=STORE_ERROR)
    assert final["status"] == "failed" and final["error"]["code"] == "store_error"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(final["id"])
    assert await conversation_items(client, conversation.id) == []
    # The next turn goes through, and the model never saw the refused one.
    answered = await client.responses.create(model="turns", input="again", conversation=conversation.id)
    assert answered.output_text == "First answer."
    assert len(await conversation_items(client, conversation.id)) == 2
