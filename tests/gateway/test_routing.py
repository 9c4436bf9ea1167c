"""Routing across deployments and providers: chains that change backend, failover, fallbacks, aliases, cool-down."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import openai
import pytest
from fakes import Failure, FakeUpstream, Reply
from support.harness import stream_events

from gateway.upstreams import KINDS, Upstreams, entry
from gateway.wire import (
    SEED_CALLS,
    SEED_PROMPT,
    answered,
    create_json,
    function_calls,
    history,
    output_text,
    outputs_for,
    seed,
    turns_of,
)

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("order", list(itertools.permutations(KINDS)), ids="-then-".join)
async def test_a_chain_continues_on_other_providers(
    order: tuple[str, str, str], upstreams: Upstreams, make_app: Any
) -> None:
    """Calls made on one backend, answered on a second, followed up on a third: each sees it all."""
    first_kind, second_kind, third_kind = order
    fakes = {kind: await upstreams.start(kind) for kind in order}
    app = await make_app([entry(kind, fakes[kind], name=kind) for kind in order])
    client = app.client()
    fakes[first_kind].enqueue(Reply(calls=SEED_CALLS, chunks=2, interleave=True))
    fakes[second_kind].enqueue(Reply(text="Done: 580.2 and three numbers.", chunks=3))
    fakes[third_kind].enqueue(Reply(text="Glad to help."))

    _, first = await stream_events(client, **seed(model=first_kind))
    calls = function_calls(first)
    assert len(calls) == 4 and first["model"] == first_kind
    _, second = await stream_events(
        client,
        model=second_kind,
        previous_response_id=first["id"],
        input=outputs_for(calls),
        tools=seed()["tools"],
    )
    assert second["model"] == second_kind and output_text(second) == "Done: 580.2 and three numbers."
    expected = [("user", SEED_PROMPT), *turns_of(calls), *answered(calls)]
    assert history(second_kind, fakes[second_kind].last_body) == expected

    third = await create_json(client, model=third_kind, previous_response_id=second["id"], input="Thanks!")
    assert third["model"] == third_kind and output_text(third) == "Glad to help."
    expected += [("assistant", "Done: 580.2 and three numbers."), ("user", "Thanks!")]
    assert history(third_kind, fakes[third_kind].last_body) == expected
    assert [len(fake.requests) for fake in fakes.values()] == [1, 1, 1]


async def test_failover_mid_chain_moves_the_conversation_to_another_provider(
    upstreams: Upstreams, make_app: Any
) -> None:
    """One model on two backends; each turn, the deployment asked first fails and the other one answers."""
    claude, chat = await upstreams.start("anthropic"), await upstreams.start("chat_completions")
    app = await make_app([entry("anthropic", claude), entry("chat_completions", chat)])
    client = app.client()
    claude.enqueue(Failure(status=529, message="Overloaded."), Reply(text="All four are done."))
    chat.enqueue(Reply(calls=SEED_CALLS, chunks=2, interleave=True), Failure(status=503, message="Unavailable."))

    _, first = await stream_events(client, **seed())
    calls = function_calls(first)
    assert len(calls) == 4 and len(claude.requests) == 1 and len(chat.requests) == 1
    _, second = await stream_events(
        client, model="gpt-4.1", previous_response_id=first["id"], input=outputs_for(calls), tools=seed()["tools"]
    )
    assert output_text(second) == "All four are done."
    assert len(claude.requests) == 2 and len(chat.requests) == 2
    # The calls Chat Completions made reach Anthropic as tool_use/tool_result blocks.
    assert history("anthropic", claude.last_body) == [("user", SEED_PROMPT), *turns_of(calls), *answered(calls)]


async def test_fallbacks_serve_when_every_deployment_fails_before_the_first_token(
    upstreams: Upstreams, make_app: Any
) -> None:
    failing = await upstreams.start("openai_responses")
    backup = await upstreams.start("anthropic")
    app = await make_app(
        [
            entry("openai_responses", failing, name="primary"),
            entry("chat_completions", upstreams.refusing("chat_completions"), name="primary"),
            entry("anthropic", backup, name="backup"),
        ],
        fallbacks={"primary": ["backup"]},
    )
    failing.enqueue(Failure(status=429, message="Rate limit reached."))
    backup.enqueue(Reply(text="From the fallback.", chunks=2))
    _, final = await stream_events(app.client(), model="primary", input="hi")
    # The response names the model that answered.
    assert final["model"] == "backup" and output_text(final) == "From the fallback."
    assert len(failing.requests) == 1 and len(backup.requests) == 1


async def test_fallbacks_are_not_used_while_a_deployment_answers(upstreams: Upstreams, make_app: Any) -> None:
    primary, backup = await upstreams.start("chat_completions"), await upstreams.start("chat_completions")
    app = await make_app(
        [entry("chat_completions", primary, name="primary"), entry("chat_completions", backup, name="backup")],
        fallbacks={"primary": ["backup"]},
    )
    primary.enqueue(Reply(text="Primary here."))
    final = await create_json(app.client(), model="primary", input="hi")
    assert final["model"] == "primary" and backup.requests == []


async def test_when_everything_fails_the_client_gets_the_last_upstream_error(
    upstreams: Upstreams, make_app: Any
) -> None:
    first, second = await upstreams.start("chat_completions"), await upstreams.start("anthropic")
    app = await make_app(
        [entry("chat_completions", first, name="a"), entry("anthropic", second, name="b")],
        fallbacks={"a": ["b"]},
    )
    first.enqueue(Failure(status=500, message="Chat upstream down."))
    second.enqueue(Failure(status=529, message="Anthropic is overloaded."))
    with pytest.raises(openai.APIStatusError) as caught:
        await app.client().responses.create(model="a", input="hi")
    assert caught.value.status_code == 502
    assert "Anthropic is overloaded." in caught.value.message
    assert len(first.requests) == 1 and len(second.requests) == 1


async def test_aliases(upstreams: Upstreams, make_app: Any) -> None:
    fake = await upstreams.start("openai_responses")
    app = await make_app([entry("openai_responses", fake, name="gpt-4.1")], aliases={"gpt-4o": "gpt-4.1"})
    fake.enqueue(Reply(text="Aliased."), Reply(text="Again."))
    client = app.client()
    final = await create_json(client, model="gpt-4o", input="hi")
    assert final["model"] == "gpt-4.1" and output_text(final) == "Aliased."
    assert fake.last_body["model"] == "openai_responses-upstream"
    _, streamed = await stream_events(client, model="gpt-4o", input="hi")
    assert output_text(streamed) == "Again."
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(model="gpt-5", input="hi")
    assert caught.value.code == "model_not_found"


async def test_fallbacks_named_by_alias(upstreams: Upstreams, make_app: Any) -> None:
    """Fallback chains may be keyed and targeted by alias as well as by model name."""
    main, spare = await upstreams.start("chat_completions"), await upstreams.start("anthropic")
    app = await make_app(
        [entry("chat_completions", main, name="main-model"), entry("anthropic", spare, name="spare-model")],
        aliases={"main": "main-model", "spare": "spare-model"},
        fallbacks={"main": ["spare"]},
    )
    main.enqueue(Failure(status=502, message="Bad gateway."))
    spare.enqueue(Reply(text="Spare answering."))
    final = await create_json(app.client(), model="main-model", input="hi")
    assert final["model"] == "spare-model" and output_text(final) == "Spare answering."


async def test_a_deployment_that_keeps_failing_cools_down(upstreams: Upstreams, make_app: Any) -> None:
    sick = await upstreams.start("chat_completions", default=Failure(status=500, message="Still broken."))
    healthy = await upstreams.start("chat_completions", default=Reply(text="Healthy."))
    app = await make_app([entry("chat_completions", sick), entry("chat_completions", healthy)])
    client = app.client()
    # Round robin puts the sick deployment first every other request; each time it fails over.
    for _ in range(10):
        if len(sick.requests) == 3:
            break
        final = await create_json(client, model="gpt-4.1", input="hi")
        assert output_text(final) == "Healthy."
    assert len(sick.requests) == 3
    # Three failures in a row: the next requests go straight to the healthy deployment.
    served = len(healthy.requests)
    for _ in range(4):
        _, final = await stream_events(client, model="gpt-4.1", input="hi")
        assert output_text(final) == "Healthy."
    assert len(sick.requests) == 3 and len(healthy.requests) == served + 4


async def test_weighted_round_robin(upstreams: Upstreams, make_app: Any) -> None:
    heavy = await upstreams.start("anthropic", default=Reply(text="heavy"))
    light = await upstreams.start("anthropic", default=Reply(text="light"))
    app = await make_app([entry("anthropic", heavy, weight=3), entry("anthropic", light)])
    client = app.client()
    answers = [output_text(await create_json(client, model="gpt-4.1", input="hi")) for _ in range(8)]
    assert answers.count("heavy") == 6 and answers.count("light") == 2
    assert _requests(heavy) == 6 and _requests(light) == 2


def _requests(fake: FakeUpstream) -> int:
    return len(fake.requests)


async def test_a_misconfigured_deployment_fails_over(upstreams: Upstreams, make_app: Any) -> None:
    """An upstream 404 (wrong base_url or upstream_model) is the deployment's fault, not the client's."""
    wrong, right = await upstreams.start("openai_responses"), await upstreams.start("openai_responses")
    app = await make_app([entry("openai_responses", wrong), entry("openai_responses", right)])
    wrong.enqueue(Failure(status=404, message="The model `gpt-4.1-typo` does not exist."))
    right.enqueue(Reply(text="Found."))
    final = await create_json(app.client(), model="gpt-4.1", input="hi")
    assert output_text(final) == "Found." and len(wrong.requests) == 1


async def test_a_timeout_before_the_first_token_fails_over(upstreams: Upstreams, make_app: Any) -> None:
    """An upstream that accepts the connection and never answers is given up on after `timeout.first_token`."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # until the gateway gives up and closes the connection
        writer.close()
        await writer.wait_closed()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    healthy = await upstreams.start("chat_completions")
    app = await make_app(
        [
            entry("chat_completions", f"http://127.0.0.1:{port}/v1", timeout={"connect": 5, "first_token": 0.2}),
            entry("chat_completions", healthy),
        ]
    )
    healthy.enqueue(Reply(text="Eventually."))
    try:
        _, final = await stream_events(app.client(), model="gpt-4.1", input="hi")
    finally:
        silent.close()
        await silent.wait_closed()
    assert output_text(final) == "Eventually." and len(accepted) == 1


async def test_a_feature_one_deployment_lacks_is_served_by_another(upstreams: Upstreams, make_app: Any) -> None:
    """Anthropic without structured output and a chat server share a name: json_schema always lands on chat."""
    anthropic = await upstreams.start("anthropic")
    chat = await upstreams.start("chat_completions")
    app = await make_app([entry("anthropic", anthropic), entry("chat_completions", chat)])
    client = app.client()
    city = {
        "type": "json_schema",
        "name": "city",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    }
    for _ in range(3):
        chat.enqueue(Reply(text='{"name": "Oslo"}', chunks=2))
        final = await create_json(client, model="gpt-4.1", input="A city, as JSON.", text={"format": city})
        assert final["status"] == "completed" and output_text(final) == '{"name": "Oslo"}'
    assert anthropic.requests == [] and len(chat.requests) == 3
