"""Overload: past a cap a request is refused at once (503, Retry-After); a client that hangs up stops its work."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import openai
import pytest
from support.harness import KEY_A, scripted

from respgate.http.app import Gateway

# 20,000 tokens at 10 ms: a generation that outlives every wait below unless it is stopped.
ENDLESS = " ".join(f"w{i}" for i in range(20_000))
MODELS = [
    scripted("slow", {"text": ENDLESS}, delay=0.01),
    scripted("sleepy", {"text": "a late answer", "delay": 60}),
    scripted("chat", {"text": "Served."}),
]


def _eventually(probe: Callable[[], Any], *, within: float = 15.0) -> Any:
    """Poll `probe` until it returns a truthy value (a wait for the server, not a timing check)."""
    deadline = time.monotonic() + within
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError("the server did not get there in time")
        time.sleep(0.02)
    return result


async def _until(probe: Callable[[], bool], *, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError("the server did not get there in time")
        await asyncio.sleep(0.01)


def _assert_overloaded(error: openai.APIStatusError) -> None:
    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["retry-after-ms"] == "1000"
    body = error.response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "server_error"
    assert body["error"]["code"] == "server_overloaded"
    assert body["error"]["param"] is None
    assert "try again in 1s" in body["error"]["message"]


def _gateway(live: Any) -> Gateway:
    gateway = live.server.gateway
    assert gateway is not None
    return gateway


def _stored_rows(gateway: Gateway) -> int:
    url = gateway.settings.database_url
    assert url is not None and url.startswith("sqlite+aiosqlite:///")
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"))) as db:
        count: int = db.execute("SELECT count(*) FROM responses").fetchone()[0]
    return count


@contextlib.contextmanager
def _raw_request(port: int, body: dict[str, Any]) -> Iterator[socket.socket]:
    """A POST /v1/responses on a socket of its own; leaving the block closes the socket (the hang-up)."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY_A}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + payload)
        yield sock


def test_past_the_generation_cap_a_request_is_refused_at_once(live_server) -> None:
    live = live_server(MODELS, overload={"max_generations": 2})
    gateway = _gateway(live)
    client = live.client()
    streams = [client.responses.create(model="slow", input="hi", stream=True) for _ in range(2)]
    for stream in streams:
        assert next(iter(stream)).type == "response.created"

    # Both slots are taken by generations that run for minutes: the third request is answered now.
    with pytest.raises(openai.InternalServerError) as refused:
        client.responses.create(model="chat", input="hi")
    _assert_overloaded(refused.value)
    with pytest.raises(openai.InternalServerError) as refused_stream:
        client.responses.create(model="chat", input="hi", stream=True)
    _assert_overloaded(refused_stream.value)
    assert gateway.admission.generations == 2

    # Background work has its own queue: it is accepted, and runs, while the foreground is full.
    queued = client.responses.create(model="chat", input="hi", background=True)
    assert queued.status in ("queued", "in_progress", "completed")
    done = _eventually(lambda: (r := client.responses.retrieve(queued.id)).status == "completed" and r)
    assert done.output_text == "Served."

    for stream in streams:
        stream.close()
    _eventually(lambda: gateway.admission.generations == 0)
    assert client.responses.create(model="chat", input="hi").output_text == "Served."


def test_the_sdk_retries_a_refusal_when_told_and_gets_its_answer_once_there_is_room(live_server) -> None:
    live = live_server(MODELS, overload={"max_generations": 1, "retry_after_seconds": 0.2})
    holder = live.client().responses.create(model="slow", input="hi", stream=True)
    assert next(iter(holder)).type == "response.created"
    # As users run it: the SDK retries a 503 after `retry-after-ms` (here 200 ms).
    retrying = openai.OpenAI(
        api_key=KEY_A,
        base_url=f"{live.server.base_url}/v1",
        max_retries=50,
        http_client=httpx.Client(transport=live.recorder),
    )
    with retrying, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(retrying.responses.create, model="chat", input="hi")
        _eventually(lambda: any(exchange.status == 503 for exchange in live.recorder.exchanges))
        holder.close()
        assert answer.result(timeout=60).output_text == "Served."
    statuses = [exchange.status for exchange in live.recorder.exchanges]
    assert statuses[-1] == 200 and set(statuses[1:-1]) == {503}


def test_a_non_stream_client_that_hangs_up_stops_its_generation_and_nothing_is_stored(live_server) -> None:
    live = live_server(MODELS)
    gateway = _gateway(live)
    with _raw_request(live.server.port, {"model": "slow", "input": "hi"}):
        _eventually(lambda: gateway.admission.generations == 1)
        time.sleep(0.5)  # not a check: lets the model produce some of its answer before the hang-up
    # The client is gone: its generation stops (it would run for 200 s) and, since the answer never
    # left the server, nobody could ever ask for the response by its id: none is stored.
    _eventually(lambda: gateway.admission.generations == 0)
    assert _stored_rows(gateway) == 0
    client = live.client()
    assert client.responses.create(model="chat", input="hi").output_text == "Served."
    assert _stored_rows(gateway) == 1


def test_a_stream_client_that_hangs_up_before_the_first_event_leaves_nothing_stored(live_server) -> None:
    live = live_server(MODELS)
    gateway = _gateway(live)
    with _raw_request(live.server.port, {"model": "sleepy", "input": "hi", "stream": True}) as sock:
        _eventually(lambda: gateway.admission.generations == 1)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # not even the response headers: the model has not answered yet
    _eventually(lambda: gateway.admission.generations == 0)
    assert _stored_rows(gateway) == 0


@contextlib.asynccontextmanager
async def _store_locked(url: str, backend: str) -> AsyncIterator[None]:
    """Writers to the responses table wait (as behind a slow database) until the block ends."""
    if backend == "sqlite":
        with contextlib.closing(
            sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
        ) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                db.execute("ROLLBACK")
        return
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE responses IN SHARE ROW EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


async def test_a_store_that_is_behind_refuses_new_responses(make_app, stores, backend) -> None:
    # The background runner's own store work (leases, claims) waits for its next heartbeat, long after this test.
    app = await make_app(
        MODELS,
        backend=backend,
        overload={"max_store_queue": 2, "store_pool_size": 1},
        background={"heartbeat_seconds": 300, "lease_seconds": 600},
    )
    store = app.gateway.store
    await _until(lambda: store.backlog() == 0)
    client = app.client()
    async with _store_locked(stores.urls[backend], backend):
        waiting: list[asyncio.Task[Any]] = []
        for text in ("a", "b"):
            waiting.append(asyncio.create_task(client.responses.create(model="chat", input=text)))
            await _until(lambda: store.backlog() >= len(waiting))
        for params in ({}, {"stream": True}, {"background": True}):
            with pytest.raises(openai.InternalServerError) as refused:
                await client.responses.create(model="chat", input="c", **params)
            _assert_overloaded(refused.value)
        assert not any(task.done() for task in waiting)
    # Admitted work is never dropped: both responses are stored once the database catches up.
    for task in waiting:
        response = await task
        assert response.status == "completed"
        assert (await client.responses.retrieve(response.id)).output_text == "Served."
    assert (await client.responses.create(model="chat", input="d")).output_text == "Served."
