"""Reasoning across turns: each backend gets back only the reasoning it can replay, never another's blob."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import Reply
from support.harness import stream_events

from gateway.upstreams import Upstreams, entry
from gateway.wire import SEED_CALLS, SEED_PROMPT, answered, function_calls, history, outputs_for, seed, turns_of

pytestmark = pytest.mark.asyncio

INCLUDE = {"include": ["reasoning.encrypted_content"]}
THINKING = "Four independent tools: call them all at once."
BLOB = "b64-opaque-blob"


async def _reasoning_then_calls(
    upstreams: Upstreams,
    make_app: Any,
    first_kind: str,
    second_kind: str,
    *,
    replayed: bool,
    **first_params: Any,
) -> tuple[Any, dict[str, Any]]:
    """Turn one on `first_kind` reasons and calls the seed's tools; turn two on `second_kind` gets the outputs.

    The second upstream must see the whole conversation, with the reasoning blob only when `replayed`.
    """
    first_fake = await upstreams.start(first_kind)
    second_fake = first_fake if second_kind == first_kind else await upstreams.start(second_kind)
    models = [entry(first_kind, first_fake, name="one", capabilities={"reasoning": True})]
    if second_fake is not first_fake:
        models.append(entry(second_kind, second_fake, name="two", capabilities={"reasoning": True}))
    app = await make_app(models)
    first_fake.enqueue(Reply(reasoning=THINKING, encrypted_reasoning=BLOB, calls=SEED_CALLS))
    second_fake.enqueue(Reply(text="Done."))
    client = app.client()
    _, first = await stream_events(client, **seed(model="one"), reasoning={"effort": "low"}, **first_params)
    assert first["output"][0]["type"] == "reasoning"
    calls = function_calls(first)
    _, second = await stream_events(
        client,
        model="one" if second_fake is first_fake else "two",
        previous_response_id=first["id"],
        input=outputs_for(calls),
        tools=seed()["tools"],
    )
    assert second["status"] == "completed"
    reasoning = [("reasoning", BLOB)] if replayed else []
    expected = [("user", SEED_PROMPT), *reasoning, *turns_of(calls), *answered(calls)]
    assert history(second_kind, second_fake.last_body) == expected
    return second_fake, first


async def test_anthropic_thinking_is_replayed_to_anthropic(upstreams: Upstreams, make_app: Any) -> None:
    fake, first = await _reasoning_then_calls(
        upstreams, make_app, "anthropic", "anthropic", replayed=True, **INCLUDE
    )
    assert first["output"][0]["encrypted_content"].endswith(BLOB)
    assistant = fake.last_body["messages"][1]
    assert assistant["content"][0] == {"type": "thinking", "thinking": THINKING, "signature": BLOB}


async def test_anthropic_thinking_is_replayed_even_when_the_client_did_not_ask_to_see_it(
    upstreams: Upstreams, make_app: Any
) -> None:
    fake, first = await _reasoning_then_calls(upstreams, make_app, "anthropic", "anthropic", replayed=True)
    assert "encrypted_content" not in first["output"][0]
    assert fake.last_body["messages"][1]["content"][0]["type"] == "thinking"


async def test_openai_reasoning_is_replayed_to_a_responses_upstream(upstreams: Upstreams, make_app: Any) -> None:
    fake, _ = await _reasoning_then_calls(
        upstreams, make_app, "openai_responses", "openai_responses", replayed=True, **INCLUDE
    )
    # The blob goes back as OpenAI minted it, without the gateway's own item id (unknown upstream).
    assert fake.last_body["input"][1] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": THINKING}],
        "encrypted_content": BLOB,
    }


@pytest.mark.parametrize(
    ("first_kind", "second_kind"),
    [
        ("anthropic", "openai_responses"),
        ("anthropic", "chat_completions"),
        ("openai_responses", "anthropic"),
        ("openai_responses", "chat_completions"),
        ("chat_completions", "anthropic"),
        ("chat_completions", "openai_responses"),
    ],
)
async def test_reasoning_from_another_backend_is_dropped(
    upstreams: Upstreams, make_app: Any, first_kind: str, second_kind: str
) -> None:
    fake, _ = await _reasoning_then_calls(upstreams, make_app, first_kind, second_kind, replayed=False, **INCLUDE)
    assert BLOB not in str(fake.last_body)
    assert THINKING not in str(fake.last_body)
