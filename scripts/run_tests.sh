#!/usr/bin/env bash
# Sets up everything (system packages, .venv, custom kernels) and runs the test suite.
# Usage: bash scripts/run_tests.sh [pytest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh --dev
exec .venv/bin/python -m pytest tests "$@"
