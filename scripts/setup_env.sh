#!/usr/bin/env bash
# Creates (or reuses) the virtual environment .venv with the project's dependencies and builds the custom kernels.
# Usage: bash scripts/setup_env.sh [--dev]   (--dev also installs the test tools, Chromium included)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQ=requirements.txt
SYSTEM=()
if [ "${1:-}" = "--dev" ]; then
    REQ=requirements-dev.txt
    SYSTEM=(--browser)
fi

bash scripts/install_system_deps.sh "${SYSTEM[@]}"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating virtual environment .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
STAMP=.venv/.installed-$(sha256sum requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-$(basename "$REQ" .txt)
if [ ! -e "$STAMP" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$REQ"
  touch "$STAMP"
fi
PATH="$ROOT/.venv/bin:$PATH" bash scripts/build_custom.sh
