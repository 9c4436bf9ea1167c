"""The openai-agents SDK against the gateway: a function tool, run and run_streamed (§10 row 18)."""

from __future__ import annotations

import json

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from support.events import check_stream
from support.harness import scripted

pytestmark = pytest.mark.asyncio

MODELS = [
    scripted(
        "agent-model",
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"text": "It is sunny in Paris."},
    )
]
CALLED: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLED.append(city)
    return f"sunny in {city}"


def _agent(client) -> Agent:
    set_tracing_disabled(True)
    return Agent(
        name="weather",
        instructions="Answer weather questions with the tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model="agent-model", openai_client=client),
    )


async def test_runner_run(make_app) -> None:
    app = await make_app(MODELS)
    CALLED.clear()
    result = await Runner.run(_agent(app.client()), "What is the weather in Paris?")
    assert result.final_output == "It is sunny in Paris."
    assert CALLED == ["Paris"]
    # The second request resent the history (mode B) with the tool's output.
    second = [exchange for exchange in app.recorder.exchanges if exchange.method == "POST"][-1]
    assert second.status == 200
    assert json.loads(second.body)["output"][0]["content"][0]["text"] == "It is sunny in Paris."


async def test_runner_run_streamed(make_app) -> None:
    app = await make_app(MODELS)
    CALLED.clear()
    result = Runner.run_streamed(_agent(app.client()), "What is the weather in Paris?")
    kinds = [event.type async for event in result.stream_events()]
    assert result.final_output == "It is sunny in Paris."
    assert CALLED == ["Paris"]
    assert "raw_response_event" in kinds
    streams = app.recorder.streams()
    assert len(streams) == 2
    finals = [check_stream(stream.events) for stream in streams]
    assert [item["type"] for item in finals[0]["output"]] == ["function_call"]
    assert finals[1]["output"][0]["content"][0]["text"] == "It is sunny in Paris."
