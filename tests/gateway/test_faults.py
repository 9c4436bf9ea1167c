"""Upstreams that break: every way is bounded in time, fails over only before the first token, and is honest.

Each test configures timeouts of a fraction of a second on the faulty deployment, so a fault that
is not handled shows up as a wrong answer rather than a hang.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fakes import Failure, FakeUpstream, Fault, Reply
from fakes.faults import (
    ENDS_AFTER_FINISH,
    ENDS_BEFORE_FINISH,
    GARBAGE_AFTER_FIRST_DELTA,
    GARBAGE_BEFORE_FIRST_DELTA,
    HANG_AFTER_FIRST_DELTA,
    HANG_AFTER_HEADERS,
    HANG_BEFORE_RESPONSE,
    IDLE_AFTER_FINISH,
    RESET_AFTER_FINISH,
    RESET_AFTER_FIRST_DELTA,
    RESET_AFTER_HEADERS,
    RESET_BEFORE_RESPONSE,
)
from fakes.script import split
from support.events import check_response
from support.harness import App, stream_events

from gateway.upstreams import Upstreams, entry
from gateway.wire import create_json, output_text

pytestmark = pytest.mark.asyncio

ANSWER = "Answered by the healthy deployment."
# Short where the fault is, generous where it is not, so that a slow machine cannot fake a fault.
BEFORE_FIRST_TOKEN = {"first_token": 0.3, "read": 30}
AFTER_FIRST_TOKEN = {"first_token": 30, "read": 0.3}


async def _faulty_then_healthy(
    kind: str, upstreams: Upstreams, make_app: Any, timeouts: dict[str, float], faulty: str | None = None
) -> tuple[App, FakeUpstream, FakeUpstream]:
    """Two deployments of gpt-4.1; round robin asks the faulty one (the first entry) first."""
    bad, good = await upstreams.start(kind), await upstreams.start(kind, default=Reply(text=ANSWER, chunks=2))
    app = await make_app([entry(kind, faulty or bad, timeout=timeouts), entry(kind, good)])
    return app, bad, good


NOTHING_USEFUL = {
    "reset before the response": RESET_BEFORE_RESPONSE,
    "reset after the headers": RESET_AFTER_HEADERS,
    "hang before the response": HANG_BEFORE_RESPONSE,
    "hang after the headers, with keep-alive comments": HANG_AFTER_HEADERS,
    "garbage before the first delta": GARBAGE_BEFORE_FIRST_DELTA,
    "500": Failure(status=500, message="The server had an error."),
}


@pytest.mark.parametrize("fault", list(NOTHING_USEFUL.values()), ids=list(NOTHING_USEFUL))
async def test_nothing_before_the_first_token_fails_over(
    kind: str, fault: Fault | Failure, upstreams: Upstreams, make_app: Any
) -> None:
    app, bad, good = await _faulty_then_healthy(kind, upstreams, make_app, BEFORE_FIRST_TOKEN)
    bad.enqueue(fault)
    _, final = await stream_events(app.client(), model="gpt-4.1", input="hi")
    assert final["status"] == "completed" and output_text(final) == ANSWER
    assert len(bad.requests) == 1 and len(good.requests) == 1
    # It counts towards the faulty deployment's cool-down like any failure.
    assert [dep.failures for dep in app.gateway.router.deployments()] == [1, 0]


async def test_a_refused_connection_fails_over(kind: str, upstreams: Upstreams, make_app: Any) -> None:
    app, _, good = await _faulty_then_healthy(
        kind, upstreams, make_app, BEFORE_FIRST_TOKEN, faulty=upstreams.refusing(kind)
    )
    final = await create_json(app.client(), model="gpt-4.1", input="hi")
    assert output_text(final) == ANSWER and len(good.requests) == 1


async def test_a_deployment_silent_before_its_first_token_cools_down(upstreams: Upstreams, make_app: Any) -> None:
    app, bad, good = await _faulty_then_healthy("chat_completions", upstreams, make_app, BEFORE_FIRST_TOKEN)
    bad.default = HANG_AFTER_HEADERS
    client = app.client()
    for _ in range(10):
        if len(bad.requests) == 3:
            break
        assert output_text(await create_json(client, model="gpt-4.1", input="hi")) == ANSWER
    assert len(bad.requests) == 3
    served = len(good.requests)
    for _ in range(3):
        assert output_text(await create_json(client, model="gpt-4.1", input="hi")) == ANSWER
    assert len(bad.requests) == 3 and len(good.requests) == served + 3


MID_ANSWER = {
    "hang": HANG_AFTER_FIRST_DELTA,
    "reset": RESET_AFTER_FIRST_DELTA,
    "garbage": GARBAGE_AFTER_FIRST_DELTA,
    "end without the finish": ENDS_BEFORE_FINISH,
}


@pytest.mark.parametrize("fault", list(MID_ANSWER.values()), ids=list(MID_ANSWER))
async def test_a_failure_after_the_first_token_fails_the_response(
    kind: str, fault: Fault, upstreams: Upstreams, make_app: Any
) -> None:
    app, bad, good = await _faulty_then_healthy(kind, upstreams, make_app, AFTER_FIRST_TOKEN)
    bad.enqueue(fault)
    client = app.client()
    events, final = await stream_events(client, model="gpt-4.1", input="hi")
    assert events[-1]["type"] == "response.failed" and final["status"] == "failed"
    deltas = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    assert deltas == split(fault.reply.text, fault.reply.chunks)[:1]
    # The client has seen part of an answer: no other deployment may start another one.
    assert good.requests == []
    stored = (await client.responses.with_raw_response.retrieve(final["id"])).http_response.json()
    check_response(stored)
    assert stored["status"] == "failed" and stored["error"] == final["error"]


async def test_a_stalled_answer_names_the_timeout(upstreams: Upstreams, make_app: Any) -> None:
    app, bad, _ = await _faulty_then_healthy("openai_responses", upstreams, make_app, AFTER_FIRST_TOKEN)
    bad.enqueue(HANG_AFTER_FIRST_DELTA)
    final = await create_json(app.client(), model="gpt-4.1", input="hi")
    assert final["status"] == "failed" and "timeout.read" in final["error"]["message"]


AFTER_THE_FINISH = {"idle": IDLE_AFTER_FINISH, "reset": RESET_AFTER_FINISH, "end": ENDS_AFTER_FINISH}


@pytest.mark.parametrize("fault", list(AFTER_THE_FINISH.values()), ids=list(AFTER_THE_FINISH))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_answer_whose_finish_came_is_complete(
    kind: str, fault: Fault, stream: bool, upstreams: Upstreams, make_app: Any
) -> None:
    """No usage chunk, no `[DONE]`, no `message_stop`: the answer itself was whole."""
    fake = await upstreams.start(kind)
    app = await make_app([entry(kind, fake, timeout=AFTER_FIRST_TOKEN)])
    fake.enqueue(fault)
    if stream:
        _, final = await stream_events(app.client(), model="gpt-4.1", input="hi")
    else:
        final = await create_json(app.client(), model="gpt-4.1", input="hi")
    assert final["status"] == "completed" and output_text(final) == fault.reply.text


async def test_a_slow_steady_stream_is_not_a_stalled_one(kind: str, upstreams: Upstreams, make_app: Any) -> None:
    """`read` bounds each silence, not the whole answer: twelve pieces, each well within it."""
    fake = await upstreams.start(kind)
    app = await make_app([entry(kind, fake, timeout={"first_token": 5, "read": 0.5})])
    text = "A slow but steady answer, one piece at a time."
    fake.enqueue(Fault(reply=Reply(text=text, chunks=12), drip=0.05))
    _, final = await stream_events(app.client(), model="gpt-4.1", input="hi")
    assert final["status"] == "completed" and output_text(final) == text


# Rate limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_upstream_429_reaches_the_client_as_openai_says_it(
    kind: str, stream: bool, upstreams: Upstreams, make_app: Any
) -> None:
    fake = await upstreams.start(kind)
    app = await make_app([entry(kind, fake)])
    fake.enqueue(Failure(status=429, message="Slow down.", headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi", stream=stream)
    error = caught.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded" and error.type == "requests"
    assert isinstance(error.body, dict) and error.body["message"] == (
        "Rate limit reached for gpt-4.1. Please try again in 7s."
    )
    assert error.response.headers["retry-after"] == "7" and "retry-after-ms" not in error.response.headers
    assert error.response.headers["x-request-id"]


async def test_retry_after_ms_is_passed_on(upstreams: Upstreams, make_app: Any) -> None:
    fake = await upstreams.start("openai_responses")
    app = await make_app([entry("openai_responses", fake)])
    fake.enqueue(Failure(status=429, headers={"retry-after-ms": "1500", "retry-after": "2"}))
    with pytest.raises(openai.RateLimitError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    headers = caught.value.response.headers
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("1500", "2")
    assert "Please try again in 1.5s." in caught.value.message


async def test_a_429_without_retry_after_says_later(upstreams: Upstreams, make_app: Any) -> None:
    fake = await upstreams.start("anthropic")
    app = await make_app([entry("anthropic", fake)])
    fake.enqueue(Failure(status=429, message="Number of request tokens has exceeded your rate limit."))
    with pytest.raises(openai.RateLimitError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    assert caught.value.message.endswith("Please try again later.")
    assert "retry-after" not in caught.value.response.headers


async def test_a_rate_limited_deployment_is_skipped_for_its_retry_after(
    kind: str, upstreams: Upstreams, make_app: Any
) -> None:
    app, limited, good = await _faulty_then_healthy(kind, upstreams, make_app, {})
    limited.enqueue(Failure(status=429, headers={"retry-after": "30"}))
    client = app.client()
    for _ in range(4):
        assert output_text(await create_json(client, model="gpt-4.1", input="hi")) == ANSWER
    # Asked once (round robin put it first), then left alone: one 429 is enough, not three failures.
    assert len(limited.requests) == 1 and len(good.requests) == 4


async def test_when_every_deployment_is_rate_limited_the_soonest_wait_is_given(
    upstreams: Upstreams, make_app: Any
) -> None:
    first, second = await upstreams.start("chat_completions"), await upstreams.start("anthropic")
    app = await make_app([entry("chat_completions", first), entry("anthropic", second)])
    first.enqueue(Failure(status=429, headers={"retry-after": "20"}))
    second.enqueue(Failure(status=429, headers={"retry-after": "5"}))
    with pytest.raises(openai.RateLimitError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    assert caught.value.response.headers["retry-after"] == "5"


async def test_a_rate_limit_outranks_a_server_error(upstreams: Upstreams, make_app: Any) -> None:
    """One deployment is rate limited, the other broken: the client is told when to come back, since
    the rate-limited one will serve then, rather than given a 502 that says nothing of when."""
    limited, broken = await upstreams.start("openai_responses"), await upstreams.start("chat_completions")
    app = await make_app(
        [entry("openai_responses", limited, name="a"), entry("chat_completions", broken, name="b")],
        fallbacks={"a": ["b"]},
    )
    limited.enqueue(Failure(status=429, headers={"retry-after": "3"}))
    broken.enqueue(Failure(status=503, message="Service unavailable."))
    with pytest.raises(openai.RateLimitError) as caught:
        await app.client().responses.create(model="a", input="hi", stream=True)
    assert caught.value.response.headers["retry-after"] == "3"
    assert len(limited.requests) == 1 and len(broken.requests) == 1


async def test_a_rate_limited_background_response_is_stored_as_failed(upstreams: Upstreams, make_app: Any) -> None:
    fake = await upstreams.start("chat_completions")
    app = await make_app([entry("chat_completions", fake)])
    fake.enqueue(Failure(status=429, headers={"retry-after": "1"}))
    client = app.client()
    events, final = await stream_events(client, model="gpt-4.1", input="hi", background=True)
    assert events[-1]["type"] == "response.failed" and final["error"]["code"] == "rate_limit_exceeded"
    stored = await client.responses.retrieve(final["id"])
    assert stored.status == "failed" and stored.error is not None
    assert stored.error.code == "rate_limit_exceeded"
