#!/usr/bin/env bash
# Sets up everything (system packages, .venv, custom kernels) and runs the test suite.
# Usage: bash scripts/run_tests.sh [pytest arguments]
# Environment: PYTEST_WORKERS (default 2 on a machine with two or more cores, else 0): pytest-xdist worker
# processes, each taking whole test files. The slow tests spend most of their time compiling graphs, which
# MindSpore does on one core, so two workers finish the suite sooner on two cores; 0 runs it in one process.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh --dev
workers="${PYTEST_WORKERS:-$(( $(nproc) >= 2 ? 2 : 0 ))}"
exec .venv/bin/python -m pytest tests -n "$workers" --dist loadfile "$@"
