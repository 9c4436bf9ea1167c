"""What the server logs: every 5xx once, with its traceback; never what a client sent (issue 8, item 3)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from support.harness import KEY_A, App, make_settings

from respgate.http.app import Gateway
from respgate.providers.registry import build_provider
from respgate.storage.sql import SqlResponseStore, create_store_engine

SECRET = "SECRET-7b2d9e41-never-in-a-log"
AUTH = {"Authorization": f"Bearer {KEY_A}"}


class FailingSaves:
    """The real store, except that saving a response fails the way a driver does: quoting the row."""

    def __init__(self, store: SqlResponseStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def save(self, record: Any, events: Any) -> None:
        raise RuntimeError(f"INSERT INTO responses failed for parameters ({record.response!r})")


def _models() -> list[dict[str, Any]]:
    return [
        {"name": "chat", "provider": "scripted", "script": [{"text": "Hello."}]},
        # An upstream that echoes the prompt in its error, and a model whose arguments break the schema.
        {"name": "down", "provider": "scripted", "script": [{"error": {"status": 503, "message": SECRET}}]},
        {
            "name": "tools",
            "provider": "scripted",
            "script": [{"tool_calls": [{"name": "f", "arguments": {"n": SECRET}}]}],
        },
    ]


async def _app(stores: Any, *, failing: bool) -> App:
    store = await stores.get("sqlite")
    settings = make_settings(_models(), database_url=stores.urls["sqlite"])
    gateway = await Gateway.open(
        settings,
        build_provider=build_provider,
        store=FailingSaves(store) if failing else store,
        conversations=store.conversations,
        jobs=store.jobs,
    )
    return App(gateway)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    return [handler.format(record) for record in caplog.records]


async def test_no_client_content_in_any_log_line(stores, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = await _app(stores, failing=False)
    try:
        client = app.client()
        hostile = [
            {"model": "chat", "input": [{"role": SECRET, "content": "x"}]},
            {"model": "chat", "input": [{"type": {SECRET: 1}, "content": "x"}]},
            {
                "model": "chat",
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": {"$ref": SECRET}}],
            },
            {
                "model": "chat",
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": SECRET}}},
            },
        ]
        for body in hostile:
            assert (await app.http.post("/v1/responses", json=body, headers=AUTH)).status_code == 400
        served = await client.responses.create(model="chat", input=f"my password is {SECRET}")
        assert served.status == "completed"
        down = await app.http.post("/v1/responses", json={"model": "down", "input": SECRET}, headers=AUTH)
        assert down.status_code == 502
        bad_arguments = await client.responses.create(
            model="tools",
            input=SECRET,
            tools=[
                {
                    "type": "function",
                    "name": "f",
                    "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}},
                    "strict": False,
                }
            ],
        )
        assert bad_arguments.status == "failed" and SECRET in (
            bad_arguments.error.message if bad_arguments.error else ""
        )
    finally:
        await app.aclose()
    lines = _lines(caplog)
    assert lines, "nothing was logged at all"
    assert not [line for line in lines if SECRET in line]
    # The 502 was logged once, with where it came from.
    answered = [line for line in lines if "answered 502" in line]
    assert len(answered) == 1 and "Traceback" in answered[0] and "UpstreamError(status=502" in answered[0]


async def test_a_store_failure_is_a_500_logged_once_without_the_row(
    stores, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = await _app(stores, failing=True)
    try:
        response = await app.http.post("/v1/responses", json={"model": "chat", "input": SECRET}, headers=AUTH)
    finally:
        await app.aclose()
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error" and SECRET not in response.text
    lines = _lines(caplog)
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 1, errors
    assert "Traceback" in errors[0] and "builtins.RuntimeError" in errors[0] and "in save" in errors[0]
    assert not [line for line in lines if SECRET in line]


async def test_sql_errors_do_not_quote_parameters(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        async with engine.connect() as connection:
            with pytest.raises(OperationalError) as caught:
                await connection.execute(text("SELECT :value FROM no_such_table"), {"value": SECRET})
    finally:
        await engine.dispose()
    assert SECRET not in str(caught.value)
