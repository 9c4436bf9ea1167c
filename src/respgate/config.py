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


class Limits(BaseModel):
    """What one request may ask of the server, checked before any work that costs more than a glance.

    OpenAI's documented limits where it has them (tools, Structured Outputs schemas, text lengths);
    the others are this server's, generous for real clients and small enough that no request can
    hold the event loop or the CPU for long.
    """

    model_config = ConfigDict(extra="forbid")

    # OpenAI: "Invalid 'tools': array too long. Expected an array with maximum length 128".
    # Applies to `tools` and to the `tools` of each namespace tool.
    max_tools: int = Field(default=128, ge=1)
    # All functions of a request, namespaces included (OpenAI documents no such total).
    max_functions: int = Field(default=512, ge=1)
    max_input_items: int = Field(default=10_000, ge=1)
    # OpenAI's `maxLength` for text (input text, instructions, tool outputs): 10 MiB. Images and
    # file data carried inline (`image_url`, `file_data`) are bounded by `max_body_bytes` alone.
    max_string_chars: int = Field(default=10 * 1024 * 1024, ge=1024)
    # JSON nesting anywhere in a body. The parser stops at 200; everything that stores, streams or
    # validates the request (orjson writes at most 254 levels) needs headroom above the client's.
    max_json_depth: int = Field(default=64, ge=8, le=190)
    # OpenAI's Structured Outputs limits, applied to every client schema (function parameters,
    # `text.format.schema`); the nesting limit only to strict schemas.
    max_schema_properties: int = Field(default=5000, ge=1)
    max_schema_nesting: int = Field(default=10, ge=1)
    max_schema_enum_values: int = Field(default=1000, ge=1)
    max_schema_string_chars: int = Field(default=120_000, ge=1)


class ServerSettings(BaseModel):
    """How the HTTP server keeps connections from being hoarded (`server:` in the config file).

    Timeouts are in seconds. A connection past `max_connections` first pushes out the longest-idle
    connection that is not in a request; when every one is busy it gets a 503 with `Retry-After`.
    """

    model_config = ConfigDict(extra="forbid")

    # From accepting a connection (or the first byte of a keep-alive request) to the end of its headers.
    header_timeout: float = Field(default=10.0, gt=0)
    # The longest pause between two pieces of a request body.
    body_timeout: float = Field(default=30.0, gt=0)
    # A kept-alive connection with no request in flight is closed after this long (whole seconds).
    idle_timeout: int = Field(default=30, ge=1)
    # Request line plus headers of one request: past it, a 431.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    # Unfinished headers held across all connections: past it, the oldest unfinished ones are dropped.
    max_pending_header_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    # Open client connections; also bounded by the file-descriptor limit minus `reserved_fds`.
    max_connections: int = Field(default=10_000, ge=1)
    # Descriptors kept for the store, the upstreams and answering refused connections.
    reserved_fds: int = Field(default=1024, ge=16)


class BackgroundSettings(BaseModel):
    """Background responses: owned through a lease in the database, run again elsewhere if their process dies.

    A response whose process dies is taken over by a live process within `lease_seconds` +
    `heartbeat_seconds` (35 s with the defaults), and run again from its input, or marked failed once it
    has been started `max_attempts` times.
    """

    model_config = ConfigDict(extra="forbid")

    # How long a process owns a job without renewing its lease.
    lease_seconds: float = Field(default=30.0, gt=0)
    # How often a process renews its leases, looks for jobs to take over, and checks for cancels.
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # At shutdown, how long running jobs may take to finish before they are left to another process.
    grace_seconds: float = Field(default=15.0, ge=0)
    # Jobs one process runs at once; the rest wait in the database for any process with a free slot.
    concurrency: int = Field(default=16, ge=1)

    @model_validator(mode="after")
    def _heartbeat_fits_the_lease(self) -> BackgroundSettings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError("background.heartbeat_seconds must be at most half of background.lease_seconds")
        return self


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
    limits: Limits = Field(default_factory=Limits)
    # Stored history a request continues from (previous_response_id, conversation), in bytes of JSON:
    # by default as much as one request body may carry. Over it: `context_length_exceeded`, or with
    # `truncation: "auto"` the oldest history is left out.
    max_context_bytes: int | None = Field(default=None, ge=1024)
    # Stored responses older than this many days are purged (OpenAI keeps them 30); null keeps them.
    retention_days: int | None = Field(default=30, ge=1)
    keepalive_seconds: float = Field(default=15.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerSettings = Field(default_factory=ServerSettings)
    background: BackgroundSettings = Field(default_factory=BackgroundSettings)
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
