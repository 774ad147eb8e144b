#!/usr/bin/env bash
# Quick start, main job: prepare each example project's .venv (uv), check it (lint, format check
# and tests, delegated) and measure it, with the aggregated progress bar in the terminal. Extra
# arguments go to `finecode-wm run`.
set -euo pipefail
FINECODE_EXTRAS=examples,bench source "$(dirname "$0")/../.ci/venv.sh"
cd "$repo/examples/workspace"
# The example projects have findings and failing tests planted on purpose: list them, but exit 0
# (--exit-zero); a failed action still exits 1.
exec finecode-wm run prepare_env check stats --exit-zero "$@"
