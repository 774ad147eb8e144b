#!/usr/bin/env bash
# Quick start, main job: check (lint + format check, delegated) and measure the example workspace, with the
# aggregated progress bar in the terminal. Extra arguments go to `finecode-wm run`.
set -euo pipefail
FINECODE_EXTRAS=examples,bench source "$(dirname "$0")/../.ci/venv.sh"
cd "$repo/examples/workspace"
exec finecode-wm run check stats "$@"
