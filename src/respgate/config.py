"""Settings from one YAML file plus environment variables, validated once at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# What `respgate serve` answers with when no configuration file is given.
LOCAL_DEFAULT_MODEL = "qwen2.5-coder-0.5b"

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


class OverloadSettings(BaseModel):
    """What one server process takes on at once; past a cap a request is refused at once (503, Retry-After).

    A refusal costs well under a millisecond and the client retries it; queueing instead lets every
    request wait until its client gives up, while the work for it still runs.
    """

    model_config = ConfigDict(extra="forbid")

    # Foreground responses (streamed or not) being generated in this process. Background responses do
    # not count: they have their own queue.
    max_generations: int = Field(default=256, ge=1)
    # Store operations in this process that are waiting for a connection (or the SQLite group commit)
    # or running: past this, new responses are refused until the database catches up. It counts the
    # operations running on the pool's connections too, so it must be larger than the pool.
    max_store_queue: int = Field(default=64, ge=2)
    # How late the event loop may run (seconds), twice in a row, before new responses are refused: a
    # healthy loop turns in a few ms; one that is behind has more requests than CPU, every await of
    # every request waits a whole turn, and new connections are accepted one per turn.
    max_loop_lag_seconds: float = Field(default=0.05, gt=0)
    # Sent as `Retry-After` (whole seconds, rounded up) and `retry-after-ms`, which the OpenAI SDKs honour.
    retry_after_seconds: float = Field(default=1.0, gt=0, le=60)
    # This process's database connections: a fixed pool, since connections opened past it are closed
    # again on return, and PostgreSQL forks a backend for each one.
    store_pool_size: int = Field(default=10, ge=1)
    # How long a store operation waits for a connection before it fails.
    store_pool_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _queue_exceeds_pool(self) -> OverloadSettings:
        if self.max_store_queue <= self.store_pool_size:
            raise ValueError(
                f"overload.max_store_queue ({self.max_store_queue}) must be larger than "
                f"overload.store_pool_size ({self.store_pool_size}): it counts the running operations too"
            )
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_keys: list[str] = Field(default_factory=list)
    database_url: str | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    default_model: str | None = None
    # Hosted tool types the server cannot run (web_search, file_search, …): a 400 naming them, or
    # left out of what the model sees (echoed, and named in the `x-respgate-omitted-tools` header).
    unsupported_tools: Literal["reject", "omit"] = "reject"
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    keepalive_seconds: float = Field(default=15.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    overload: OverloadSettings = Field(default_factory=OverloadSettings)

    @model_validator(mode="after")
    def _default_model_is_configured(self) -> Settings:
        names = {entry.name for entry in self.models}
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model '{self.default_model}' is not one of the configured models")
        for alias, target in self.aliases.items():
            if target not in names:
                raise ValueError(f"alias '{alias}' points to '{target}', which is not a configured model")
        for name, chain in self.fallbacks.items():
            for target in [name, *chain]:
                if target not in names and target not in self.aliases:
                    raise ValueError(f"fallbacks for '{name}' name '{target}', which is not a configured model")
        return self

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
    if not source and "models" not in raw:
        raw["models"] = [{"name": LOCAL_DEFAULT_MODEL, "provider": "local"}]
        raw["default_model"] = LOCAL_DEFAULT_MODEL
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration:\n{exc}") from exc
