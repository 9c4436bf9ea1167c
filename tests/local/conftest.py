"""Fixtures for the local provider: the real 0.5B model behind a real llama-server.

`local_provider` is session-scoped (one llama-server for the whole run) and reusable by
end-to-end tests; `seed_call()` builds the seed request as a `ModelCall`; `collect()` drains a
stream into an `Answer`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import pytest
import pytest_asyncio

from respgate.providers.base import (
    Finish,
    FunctionSpec,
    ModelCall,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    Usage,
)
from respgate.providers.local import LocalProvider, LocalSettings


def seed_request() -> dict[str, Any]:
    return json.loads(files("respgate").joinpath("data/seed_request.json").read_text(encoding="utf-8"))


def seed_tools() -> list[FunctionSpec]:
    return [
        FunctionSpec(
            name=tool["name"], description=tool.get("description"), parameters=tool["parameters"], strict=False
        )
        for tool in seed_request()["tools"]
    ]


def user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def seed_call(**overrides: Any) -> ModelCall:
    request = seed_request()
    fields: dict[str, Any] = {
        "model": "qwen2.5-coder-0.5b",
        "upstream_model": "qwen2.5-coder-0.5b",
        "items": [user_message(request["input"][0]["content"])],
        "tools": seed_tools(),
        "tool_choice": request["tool_choice"],
    }
    fields.update(overrides)
    return ModelCall(**fields)


@dataclass
class Answer:
    text: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    ended: list[int] = field(default_factory=list)
    usage: Usage | None = None
    finish: Finish | None = None
    order: list[str] = field(default_factory=list)

    def call_list(self) -> list[tuple[str, Any]]:
        """(name, decoded arguments) in index order."""
        return [(call["name"], json.loads(call["arguments"])) for _, call in sorted(self.calls.items())]


async def collect(stream: AsyncIterator[Any]) -> Answer:
    answer = Answer()
    async for delta in stream:
        answer.order.append(type(delta).__name__)
        match delta:
            case TextDelta(text=text):
                answer.text += text
            case ToolCallDelta(index=index, name=name, arguments=arguments):
                call = answer.calls.setdefault(index, {"name": None, "arguments": ""})
                if name is not None:
                    assert call["name"] is None, "a call's name is sent once, in its first delta"
                    call["name"] = name
                assert call["name"] is not None, "the first delta of a call carries its name"
                call["arguments"] += arguments
            case ToolCallEnd(index=index):
                answer.ended.append(index)
            case Usage():
                answer.usage = delta
            case Finish():
                answer.finish = delta
    return answer


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_provider() -> AsyncIterator[LocalProvider]:
    """The default preset from the user cache dir (assembled once per machine), started once."""
    provider = LocalProvider(settings=LocalSettings())
    await provider.start()
    yield provider
    await provider.aclose()


@pytest.fixture
def local_settings_factory(tmp_path: Any) -> Any:
    """Settings that keep caches and logs inside the test's temporary directory."""

    def make(**values: Any) -> LocalSettings:
        return LocalSettings(cache_dir=tmp_path / "cache", log_dir=tmp_path / "logs", **values)

    return make
