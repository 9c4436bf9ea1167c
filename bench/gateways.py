"""The gateways under test: respgate (this repository) and LiteLLM (own venv), on one mock upstream."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench import procs
from bench.procs import BENCH, GATEWAY_CPUS, LOGS, ROOT, Service

LITELLM_VENV = BENCH / ".venvs" / "litellm"
LITELLM_SPEC = "litellm[proxy]"
RESPGATE = ROOT / ".venv" / "bin" / "respgate"

# Model names used by every scenario: the suffix selects the mock variant through the base_url prefix.
STREAM_TOKENS = 500


def respgate_available() -> str | None:
    """None when `respgate serve` can run, else why not."""
    if not (ROOT / "src" / "respgate" / "cli.py").exists():
        return "src/respgate/cli.py does not exist yet"
    if not RESPGATE.exists():
        return f"{RESPGATE} is missing (pip install -e . in .venv)"
    done = subprocess.run([str(RESPGATE), "serve", "--help"], capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        return f"`respgate serve --help` failed: {done.stderr.decode()[-500:]}"
    return None


def respgate_models(mock_url: str) -> list[dict[str, Any]]:
    def entry(name: str, provider: str, prefix: str) -> dict[str, Any]:
        return {"name": name, "provider": provider, "base_url": f"{mock_url}{prefix}/v1", "api_key": "x"}

    return [
        entry("bench-cc", "chat_completions", ""),
        entry("bench-resp", "openai_responses", ""),
        entry("bench-cc-500", "chat_completions", f"/t{STREAM_TOKENS}"),
        entry("bench-resp-500", "openai_responses", f"/t{STREAM_TOKENS}"),
    ]


@contextmanager
def respgate(
    mock_url: str,
    *,
    database_url: str,
    name: str = "respgate",
    extra_models: list[dict[str, Any]] | None = None,
    log_level: str = "warning",
    wrap: list[str] | None = None,
    pin: bool = True,
) -> Iterator[Service]:
    """`respgate serve` on a fresh config; `wrap` prefixes the command (e.g. a profiler).

    `pin=False` for the local model: llama-server inherits the affinity and sizes its threads by it.
    """
    port = procs.free_port()
    config = {
        "api_keys": [],
        "database_url": database_url,
        "log_level": log_level,
        "models": respgate_models(mock_url) + (extra_models or []),
    }
    LOGS.mkdir(parents=True, exist_ok=True)
    cfg = LOGS / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [*(wrap or []), str(RESPGATE), "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    with procs.service(name, cmd, port=port, cpus=GATEWAY_CPUS if pin else None, ready_timeout=300) as svc:
        yield svc


def litellm_available() -> str | None:
    if (LITELLM_VENV / "bin" / "litellm").exists():
        return None
    return f"LiteLLM is not installed in {LITELLM_VENV}"


def ensure_litellm() -> str | None:
    """Install LiteLLM's proxy in its own venv (once); None on success, else the reason it failed."""
    if litellm_available() is None:
        return None
    procs.log(f"installing {LITELLM_SPEC} into {LITELLM_VENV} (one-time)")
    if not (LITELLM_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    done = subprocess.run(
        [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM_SPEC],
        capture_output=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        return f"pip install {LITELLM_SPEC} failed: {done.stderr.decode()[-1000:]}"
    return litellm_available()


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return done.stdout.decode().strip() or None


def litellm_config(mock_url: str) -> dict[str, Any]:
    """Equivalent to respgate's config: same upstream, no database, no auth, no callbacks.

    `openai/…` makes LiteLLM's `/v1/responses` forward natively to the upstream's `/responses`
    (passthrough); `custom_openai/…` (a generic OpenAI-compatible chat server) has no native Responses support in LiteLLM, so its
    `/v1/responses` route translates to `/chat/completions` (the bridge).
    """

    def entry(name: str, model: str, prefix: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {"model": model, "api_base": f"{mock_url}{prefix}/v1", "api_key": "x"},
        }

    return {
        "model_list": [
            entry("bench-resp", "openai/bench", ""),
            entry("bench-cc", "custom_openai/bench", ""),
            entry("bench-resp-500", "openai/bench", f"/t{STREAM_TOKENS}"),
            entry("bench-cc-500", "custom_openai/bench", f"/t{STREAM_TOKENS}"),
        ],
        "litellm_settings": {"drop_params": True, "set_verbose": False, "json_logs": False},
        "general_settings": {
            "disable_spend_logs": True,
            "disable_error_logs": True,
            # respgate runs with open access too (api_keys: []), so neither checks keys.
            "dangerously_permit_weak_or_unset_master_key": True,
        },
    }


@contextmanager
def litellm(mock_url: str, *, name: str = "litellm") -> Iterator[Service]:
    port = procs.free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    cfg = LOGS / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(litellm_config(mock_url), sort_keys=False))
    exe = LITELLM_VENV / "bin" / "litellm"
    cmd = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        "DISABLE_ADMIN_UI": "True",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_DOCS": "True",
        "NO_REDOC": "True",
        "PATH": f"{LITELLM_VENV / 'bin'}:/usr/bin:/bin",
    }
    with procs.service(name, cmd, port=port, cpus=GATEWAY_CPUS, ready_timeout=180, env=env) as svc:
        yield svc


def postgres_url(database: str = "respgate_bench") -> str | None:
    """Create (if needed) a bench database on the local PostgreSQL; None when there is none."""
    psql = shutil.which("psql")
    if psql is None:
        return None
    base = [psql, "-h", "127.0.0.1", "-U", "postgres", "-tAc"]
    try:
        probe = subprocess.run(
            [*base, f"SELECT 1 FROM pg_database WHERE datname='{database}'"],
            capture_output=True,
            check=False,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    if probe.stdout.strip() != b"1":
        subprocess.run([*base, f"CREATE DATABASE {database}"], capture_output=True, check=False, timeout=20)
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"


def reset_postgres(database: str = "respgate_bench") -> None:
    """Drop and recreate so each run starts from an empty store of the same size."""
    psql = shutil.which("psql")
    if psql is None:
        return
    base = [psql, "-h", "127.0.0.1", "-U", "postgres", "-tAc"]
    subprocess.run(
        [*base, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True, check=False, timeout=30
    )
    subprocess.run([*base, f"CREATE DATABASE {database}"], capture_output=True, check=False, timeout=30)


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{path}"
