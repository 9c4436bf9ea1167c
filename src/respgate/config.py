"""Settings from one YAML file plus environment variables, validated once at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ProviderName = Literal["openai_responses", "chat_completions", "anthropic", "local", "scripted"]


class ModelEntry(BaseModel):
    """One deployment of a model. Several entries with one `name` are load-balanced."""

    model_config = ConfigDict(extra="allow")

    name: str
    provider: ProviderName
    upstream_model: str | None = None
    weight: int = Field(default=1, ge=1)

    def provider_settings(self) -> dict[str, Any]:
        """Everything beyond the common keys: the provider module validates it."""
        return dict(self.model_extra or {})

    @property
    def target(self) -> str:
        return self.upstream_model or self.name


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_keys: list[str] = Field(default_factory=list)
    database_url: str | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    wildcard: bool = True
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    keepalive_seconds: float = Field(default=15.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("api_keys")
    @classmethod
    def _no_blank_keys(cls, keys: list[str]) -> list[str]:
        return [key.strip() for key in keys if key.strip()]

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = Path(user_data_dir("respgate")) / "respgate.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read the YAML file (argument, else `RESPGATE_CONFIG`, else none) and apply env overrides."""
    raw: dict[str, Any] = {}
    source = path or os.environ.get("RESPGATE_CONFIG")
    if source:
        try:
            loaded = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {source}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {source} must hold a mapping at the top level")
        raw = dict(loaded or {})
    if keys := os.environ.get("RESPGATE_API_KEYS"):
        raw["api_keys"] = keys.split(",")
    if url := os.environ.get("RESPGATE_DATABASE_URL"):
        raw["database_url"] = url
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration:\n{exc}") from exc
