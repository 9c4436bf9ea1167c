"""Settings of a `provider: local` model entry (the extra keys of its `ModelEntry`)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_log_dir
from pydantic import BaseModel, ConfigDict, Field, model_validator

from respgate.providers.local.model import PRESETS

DEFAULT_PRESET = "qwen2.5-coder-0.5b"


class LocalSettings(BaseModel):
    """Where the model and the engine come from, and how the engine runs.

    Exactly one model source applies: `model_path`, else `hf_file`, else `preset`.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str = DEFAULT_PRESET
    model_path: Path | None = None
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    hf_file: str | None = None
    chat_template: Path | None = None  # a jinja file, for GGUFs that carry no template
    llama_server: str | None = None
    threads: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1)
    ctx_size: int = Field(default=16384, ge=512)
    parallel: int = Field(default=4, ge=1)
    # One shared KV pool: a single long conversation may use the whole context.
    kv_unified: bool = True
    extra_args: list[str] = Field(default_factory=list)
    cache_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("respgate")) / "models")
    log_dir: Path = Field(default_factory=lambda: Path(user_log_dir("respgate")))
    startup_timeout: float = Field(default=180.0, gt=0)
    # The longest silence from llama-server, prompt processing included. There is deliberately no
    # shorter first-token bound as for remote deployments: a coding agent's long prompt takes minutes
    # to process on a small CPU, there is no other deployment to fail over to, and a timeout here
    # restarts the engine.
    token_timeout: float = Field(default=300.0, gt=0)
    # Greedy unless the request says otherwise: small models call tools reliably only greedily.
    default_temperature: float = Field(default=0.0, ge=0, le=2)
    max_calls: int = Field(default=16, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> LocalSettings:
        if self.model_path is not None and self.hf_file is not None:
            raise ValueError("set either model_path or hf_file, not both")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        return self
