#!/usr/bin/env bash
# Quick start, main job: check (lint + format check, delegated) and measure the example workspace, with the
# aggregated progress bar in the terminal. Extra arguments go to `finecode-wm run`.
set -euo pipefail
FINECODE_EXTRAS=examples,bench source "$(dirname "$0")/../.ci/venv.sh"
cd "$repo/examples/workspace"
# The example projects have findings planted on purpose: list them, but exit 0 (--exit-zero);
# a failed action still exits 1.
exec finecode-wm run check stats --exit-zero "$@"
