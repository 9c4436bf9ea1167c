"""What every remote deployment is configured with, and what follows from it for each request."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from respgate.config import ConfigError, ModelEntry
from respgate.protocol.errors import InvalidRequest
from respgate.providers.base import ModelCall
from respgate.providers.timing import Timeouts


class Capabilities(BaseModel):
    """What a deployment can do, for what cannot be probed; a request needing more gets a 400."""

    model_config = ConfigDict(extra="forbid")

    parallel_tool_calls: bool = True
    strict: bool = True
    json_schema: bool = True
    images: bool = True
    files: bool = False
    reasoning: bool = True


class UpstreamSettings(BaseModel):
    """The keys every remote deployment accepts; each provider extends it."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Timeouts = Field(default_factory=Timeouts)
    params: dict[str, Any] = Field(default_factory=dict)
    capabilities: Capabilities = Field(default_factory=Capabilities)

    @model_validator(mode="after")
    def _one_key_source(self) -> UpstreamSettings:
        if self.api_key is not None and self.api_key_env is not None:
            raise ValueError("set api_key or api_key_env, not both")
        return self

    def resolved_api_key(self, model: str) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(f"model '{model}': environment variable {self.api_key_env} is not set")
        return value


SettingsT = TypeVar("SettingsT", bound=UpstreamSettings)


def load_settings(entry: ModelEntry, model: type[SettingsT]) -> SettingsT:
    """Validate an entry's provider settings; the message never echoes values (they may be secrets)."""
    try:
        return model.model_validate(entry.provider_settings())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(settings)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"model '{entry.name}' ({entry.provider}): {problems}") from exc


def merge_params(defaults: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The configured default parameters under the request's own (nested mappings merge)."""
    merged = dict(defaults)
    for key, value in body.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = merge_params(base, value)
        else:
            merged[key] = value
    return merged


def _content_parts(call: ModelCall) -> Iterator[dict[str, Any]]:
    for item in call.items:
        content = item.get("content") if item.get("type") == "message" else item.get("output")
        if isinstance(content, list):
            yield from (part for part in content if isinstance(part, dict))


def check_capabilities(call: ModelCall, caps: Capabilities) -> None:
    """Refuse, naming the feature, a request this deployment cannot honour (never drop it silently)."""
    kinds = {part.get("type") for part in _content_parts(call)}
    missing: list[str] = []
    if "input_image" in kinds and not caps.images:
        missing.append("image inputs (input_image)")
    if "input_file" in kinds and not caps.files:
        missing.append("file inputs (input_file)")
    fmt = (call.text_format or {}).get("type")
    if fmt == "json_schema" and not caps.json_schema:
        missing.append("structured output (text.format json_schema)")
    if call.reasoning_effort is not None and not caps.reasoning:
        missing.append("reasoning (reasoning.effort)")
    if call.include_encrypted_reasoning and not caps.reasoning:
        missing.append("reasoning.encrypted_content")
    if not call.parallel_tool_calls and call.callable_tools() and not caps.parallel_tool_calls:
        missing.append("parallel_tool_calls=false")
    if missing:
        raise InvalidRequest(
            f"Model '{call.model}' does not support {', '.join(missing)} on this deployment.",
            code="unsupported_feature",
        )
