"""Upstream credentials never reach a client or a log line, whatever the upstream echoes back."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
from fakes import Failure, Reply
from support.harness import App, stream_events

from gateway.upstreams import UPSTREAM_KEY, Upstreams, entry

pytestmark = pytest.mark.asyncio

ECHOING = f"Incorrect API key provided: {UPSTREAM_KEY}. You can find your API key at https://example.test."


@pytest.fixture(autouse=True)
def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def _assert_secret_free(*texts: str) -> None:
    for text in texts:
        # Not the key, and not a recognisable piece of it either.
        assert UPSTREAM_KEY[:12] not in text and UPSTREAM_KEY[-12:] not in text, text


async def _two_deployments(kind: str, upstreams: Upstreams, make_app: Any) -> tuple[App, Any, Any]:
    first, second = await upstreams.start(kind), await upstreams.start(kind)
    app = await make_app([entry(kind, first), entry(kind, second)])
    return app, first, second


@pytest.mark.parametrize("status", [500, 429])
async def test_retryable_errors_that_echo_the_key(
    kind: str, status: int, upstreams: Upstreams, make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, first, second = await _two_deployments(kind, upstreams, make_app)
    first.enqueue(Failure(status=status, message=ECHOING))
    second.enqueue(Failure(status=status, message=ECHOING))
    with pytest.raises(openai.APIStatusError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    if status == 429:
        # A rate limit is answered in OpenAI's own words; the upstream's text (its account) stays out.
        assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    else:
        assert caught.value.status_code == 502 and "Incorrect API key provided" in caught.value.message
    assert len(first.requests) == 1 and len(second.requests) == 1
    _assert_secret_free(caught.value.response.text, caplog.text)


async def test_a_client_error_that_echoes_the_key(
    kind: str, upstreams: Upstreams, make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, first, _ = await _two_deployments(kind, upstreams, make_app)
    first.enqueue(Failure(status=400, message=ECHOING))
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi", stream=True)
    assert "[redacted]" in caught.value.message
    _assert_secret_free(caught.value.response.text, caplog.text)


async def test_a_key_at_the_end_of_a_long_error_body(
    kind: str, upstreams: Upstreams, make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Long upstream messages are shortened: never in the middle of a key that then escapes redaction."""
    app, first, _ = await _two_deployments(kind, upstreams, make_app)
    first.enqueue(Failure(status=400, message="x" * 480 + ECHOING.removeprefix("Incorrect API key provided: ")))
    with pytest.raises(openai.BadRequestError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    _assert_secret_free(caught.value.response.text, caplog.text)


async def test_rejected_credentials(
    kind: str, upstreams: Upstreams, make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await upstreams.start(kind)
    wrong = "sk-wrong-configured-key-91c2e7d4"
    app = await make_app([entry(kind, fake, api_key=wrong)])
    with pytest.raises(openai.APIStatusError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    assert caught.value.status_code == 502 and "credentials" in caught.value.message
    for text in (caught.value.response.text, caplog.text):
        assert wrong not in text
        _assert_secret_free(text)


async def test_an_in_stream_error_that_echoes_the_key(
    kind: str, upstreams: Upstreams, make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """After the first token the upstream's own error event ends the stream: its text is redacted too."""
    app, first, _ = await _two_deployments(kind, upstreams, make_app)
    first.enqueue(Reply(text="Partial answer", chunks=2, stream_error=ECHOING))
    client = app.client()
    events, final = await stream_events(client, model="gpt-4.1", input="hi")
    assert final["status"] == "failed" and "[redacted]" in final["error"]["message"]
    stored = (await client.responses.with_raw_response.retrieve(final["id"])).http_response.text
    _assert_secret_free(json.dumps(events), stored, caplog.text)


async def test_an_in_stream_error_before_the_first_token(
    kind: str, upstreams: Upstreams, make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, first, second = await _two_deployments(kind, upstreams, make_app)
    first.enqueue(Reply(stream_error=ECHOING))
    second.enqueue(Reply(stream_error=ECHOING))
    with pytest.raises(openai.APIStatusError) as caught:
        await app.client().responses.create(model="gpt-4.1", input="hi")
    assert caught.value.status_code in (400, 502)
    _assert_secret_free(caught.value.response.text, caplog.text)
