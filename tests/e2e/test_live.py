"""Over real HTTP (uvicorn on a loopback port): streaming, keep-alives and a client that hangs up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
from support.events import check_response, check_stream
from support.harness import KEY_A, scripted
from support.sse import parse_sse

LONG_TEXT = " ".join(f"word{i}" for i in range(60))
MODELS = [
    scripted("chat", {"text": "Hello over real HTTP."}),
    scripted("slow", {"text": LONG_TEXT}, delay=0.02),
    scripted("late", {"text": "worth", "delay": 0.25}),
    scripted(
        "calls", {"tool_calls": [{"name": "f", "arguments": {"x": 1}}, {"name": "f", "arguments": {"x": 2}}]}
    ),
]
TOOL = {
    "type": "function",
    "name": "f",
    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
}


def _eventually(probe: Callable[[], Any], *, within: float = 15.0) -> Any:
    """Poll `probe` until it returns a truthy value (a wait for the server's background work, not a timing check)."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = probe()
        except openai.NotFoundError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the server did not get there in time")
        time.sleep(0.02)


def test_streaming_over_real_http(live_server) -> None:
    live = live_server(MODELS)
    client = live.client()
    stream = client.responses.create(model="chat", input="hi", stream=True)
    kinds = [event.type for event in stream]
    events, final = live.last_stream()
    assert kinds == [event["type"] for event in events]
    assert final["output"][0]["content"][0]["text"] == "Hello over real HTTP."

    with client.responses.stream(model="calls", input="go", tools=[TOOL]) as helper:
        response = helper.get_final_response()
    _, wire = live.last_stream()
    assert [call.arguments for call in response.output] == ['{"x":1}', '{"x":2}']
    assert response.id == wire["id"]


def test_connection_closes_after_the_terminal_event(live_server) -> None:
    live = live_server(MODELS)
    body = {"model": "chat", "input": "hi", "stream": True}
    with (
        httpx.Client(base_url=live.server.base_url) as http,
        http.stream("POST", "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY_A}"}) as response,
    ):
        # The body ends (EOF) right after the terminal event: reading to the end returns.
        parsed = parse_sse(response.iter_lines())
    assert parsed.events[-1]["type"] == "response.completed"
    check_stream(parsed.events)


def test_keepalive_pings_on_an_idle_stream(live_server) -> None:
    live = live_server(MODELS, keepalive_seconds=0.02)
    body = {"model": "late", "input": "hi", "stream": True}
    with (
        httpx.Client(base_url=live.server.base_url) as http,
        http.stream("POST", "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY_A}"}) as response,
    ):
        parsed = parse_sse(response.iter_lines())
    assert ": ping" in parsed.comments
    check_stream(parsed.events)
    # The SDK skips comments.
    stream = live.client().responses.create(model="late", input="hi", stream=True)
    assert [event.type for event in stream][-1] == "response.completed"
    assert ": ping" in live.recorder.last_stream().comments
    live.last_stream()


def test_client_disconnect_stores_the_response_as_incomplete(live_server) -> None:
    live = live_server(MODELS)
    client = live.client()
    stream = client.responses.create(model="slow", input="hi", stream=True)
    response_id = None
    deltas = 0
    for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            deltas += 1
            if deltas == 3:
                break
    stream.close()
    assert response_id is not None

    stored = _eventually(lambda: client.responses.retrieve(response_id))
    raw = client.responses.with_raw_response.retrieve(response_id).http_response.json()
    assert stored.status == "incomplete" and raw["status"] == "incomplete"
    assert raw["incomplete_details"] == {"reason": "client_disconnected"}
    check_response(raw, extra_reasons=frozenset({"client_disconnected"}))
    text = raw["output"][0]["content"][0]["text"]
    assert text and LONG_TEXT.startswith(text) and text != LONG_TEXT
    assert raw["output"][0]["status"] == "incomplete"

    # The replay of the interrupted stream is a whole stream that ends in response.incomplete.
    replay = client.responses.retrieve(response_id, stream=True)
    assert [event.type for event in replay][-1] == "response.incomplete"
    # `client_disconnected` is respgate's own reason; the SDK's type does not list it.
    events = live.recorder.last_stream().events
    check_stream(events, extra_reasons=frozenset({"client_disconnected"}))
    assert events[-1]["response"]["incomplete_details"] == {"reason": "client_disconnected"}
