from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from fakes import FakeAnthropic, FakeChatCompletions, FakeResponses, FakeUpstream

from respgate.config import ModelEntry
from respgate.providers.anthropic import AnthropicProvider
from respgate.providers.chat_completions import ChatCompletionsProvider
from respgate.providers.openai_responses import OpenAIResponsesProvider

API_KEY = "sk-test-0123456789abcdef"

MakeProvider = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture(scope="session")
async def chat_server() -> AsyncIterator[FakeChatCompletions]:
    async with FakeChatCompletions(api_key=API_KEY) as fake:
        yield fake


@pytest_asyncio.fixture(scope="session")
async def responses_server() -> AsyncIterator[FakeResponses]:
    async with FakeResponses(api_key=API_KEY) as fake:
        yield fake


@pytest_asyncio.fixture(scope="session")
async def anthropic_server() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
def chat_fake(chat_server: FakeChatCompletions) -> FakeChatCompletions:
    chat_server.reset()
    return chat_server


@pytest.fixture
def responses_fake(responses_server: FakeResponses) -> FakeResponses:
    responses_server.reset()
    return responses_server


@pytest.fixture
def anthropic_fake(anthropic_server: FakeAnthropic) -> FakeAnthropic:
    anthropic_server.reset()
    return anthropic_server


_CLASSES: dict[str, Any] = {
    "chat_completions": ChatCompletionsProvider,
    "openai_responses": OpenAIResponsesProvider,
    "anthropic": AnthropicProvider,
}


@pytest_asyncio.fixture
async def make_provider() -> AsyncIterator[MakeProvider]:
    """`await make_provider("chat_completions", fake, **settings)`: a started provider, closed after the test."""
    started: list[Any] = []

    async def make(kind: str, fake: FakeUpstream, **settings: Any) -> Any:
        settings.setdefault("api_key", API_KEY)
        entry = ModelEntry(
            name="gpt-4.1", provider=kind, upstream_model="up-model", base_url=fake.base_url, **settings
        )
        provider = _CLASSES[kind](entry)
        await provider.start()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        await provider.aclose()
