"""9. The 10-project lint workload: every finding on every run, and the warm-run time.

Ten projects of `pkg/__init__.py` plus three modules with one F841 each (30 findings in all),
`lint` = the example ruff handler, one `finecode-wm lsp` session, six `runBatch` in a row, with
the result cache bypassed (`options.cache: false`) so that every run runs.
Before the runner redesign, every run after the first lost two projects (24 or 27 findings).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .common import Figure, figure
from .wm_client import WMClient

NAME = "lint_workload"
TITLE = "10-project lint workload, 6 runs on one server"
PROJECTS = 10
RUNS = 6
MODULE = "def f():\n    unused = 1\n    return 0\n"


def make_lint_workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fcbench-lint-"))
    for i in range(PROJECTS):
        project = root / f"proj{i:03d}"
        package = project / "pkg"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        for m in range(3):
            (package / f"mod{m}.py").write_text(MODULE)
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "proj{i:03d}"\n\n'
            "[tool.finecode.actions.lint]\n"
            'handlers = [{ source = "finecode_examples.ruff:lint" }]\n\n'
            "[tool.ruff]\nline-length = 88\n")
    return root


async def run(quick: bool) -> list[Figure]:
    workspace = make_lint_workspace()
    client = WMClient()
    findings: list[int] = []
    seconds: list[float] = []
    failed = 0
    try:
        await client.start(workspace, options={"warmRunners": False})
        for _ in range(RUNS):
            # every run really runs (the result cache would answer runs 2-6 itself)
            result = await client.run_batch(["lint"], token=client.token(),
                                            options={"cache": False})
            entries = result.result["results"]
            failed += sum(e["status"] != "ok" for e in entries)
            findings.append(sum(len(e["result"]["diagnostics"]) for e in entries
                                if e["status"] == "ok"))
            seconds.append(result.seconds)
    finally:
        await client.stop()
        shutil.rmtree(workspace, ignore_errors=True)
    return [
        figure(NAME, "findings per run (6 runs)", "findings", findings,
               goal=f"= {PROJECTS * 3} every run", note=f"per run: {findings}"),
        figure(NAME, "runs with every finding", "runs", sum(f == PROJECTS * 3 for f in findings),
               goal_min=RUNS),
        figure(NAME, "failed children over the 6 runs", "children", failed, goal_max=0),
        figure(NAME, "first (cold) run", "ms", seconds[0] * 1000),
        figure(NAME, "warm run", "ms", [s * 1000 for s in seconds[1:]], goal_max=150),
    ]
