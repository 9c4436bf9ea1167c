"""Builds the provider a `models:` entry names."""

from __future__ import annotations

from typing import assert_never

from respgate.config import ModelEntry
from respgate.providers.anthropic import AnthropicProvider
from respgate.providers.base import Provider
from respgate.providers.chat_completions import ChatCompletionsProvider
from respgate.providers.local.provider import LocalProvider
from respgate.providers.openai_responses import OpenAIResponsesProvider
from respgate.providers.scripted import ScriptedProvider


def build_provider(entry: ModelEntry) -> Provider:
    """One provider per deployment; raises `ConfigError` when its settings are unusable."""
    match entry.provider:
        case "chat_completions":
            return ChatCompletionsProvider(entry)
        case "openai_responses":
            return OpenAIResponsesProvider(entry)
        case "anthropic":
            return AnthropicProvider(entry)
        case "local":
            return LocalProvider.from_entry(entry)
        case "scripted":
            return ScriptedProvider(entry)
        case _:
            assert_never(entry.provider)
