#!/usr/bin/env bash
# Quick start, whole test suite: set up .venv, then ruff, mypy and pytest (every test has a
# timeout; the suite is bounded as a whole too). Most tests wait on subprocesses rather than
# compute, so they run in 4 pytest-xdist workers even on 2 cores; `-n 0` runs them in one process.
set -euo pipefail
FINECODE_EXTRAS=examples,test,bench source "$(dirname "$0")/../.ci/venv.sh"
cd "$repo"
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== pytest"; timeout 600 python -m pytest -q -rs -p no:cacheprovider -n 4 "$@"
