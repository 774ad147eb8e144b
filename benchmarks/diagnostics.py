"""9. Diagnostics re-pull: `workspace/diagnostic` with nothing changed, 32 projects.

What VS Code does about every 2 s. The first pull runs `lint` everywhere (one batch); every later
pull with `previousResultIds` must answer from the store: every document `unchanged`, no handler
run (counted by each project's handler appending to a file outside its inputs).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .common import Figure, figure, now
from .wm_client import WMClient, remove

NAME = "diagnostics"
TITLE = "Diagnostics re-pull, nothing changed (32 projects)"
PROJECTS = 32
FILES = 5
HANDLER = '''
async def lint(params, ctx):
    root = ctx.project_root
    with open(root / "runs.log", "a") as log:
        log.write("run\\n")
    found = []
    for path in sorted(root.glob("mod_*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("unused"):
                found.append({"path": path.name, "line": number, "column": 1, "code": "U1",
                              "message": "unused value", "severity": "warning"})
    return {"diagnostics": found}
'''


def _workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fcbench-diag-"))
    for i in range(PROJECTS):
        project = root / f"p{i:03d}"
        project.mkdir()
        (project / "pyproject.toml").write_text(
            '[tool.finecode.actions.lint]\nhandlers = [{ source = "fcdiag:lint" }]\n')
        (project / "fcdiag.py").write_text(HANDLER)
        for j in range(FILES):
            (project / f"mod_{j}.py").write_text(f"value = {j}\nunused = {i}\n")
    return root


def _runs(workspace: Path) -> int:
    return sum(len(log.read_text().splitlines()) for log in workspace.glob("*/runs.log"))


async def _pull(client: WMClient, previous: dict[str, str]) -> dict[str, Any]:
    assert client.conn is not None
    result: dict[str, Any] = await client.conn.request("workspace/diagnostic", {
        "previousResultIds": [{"uri": u, "value": v} for u, v in previous.items()]})
    return result


async def run(quick: bool) -> list[Figure]:
    rounds = 10 if quick else 30
    workspace = _workspace()
    times: list[float] = []
    handler_runs: list[float] = []
    try:
        client = WMClient()
        try:
            await client.start(workspace, options={"warmRunners": False, "trusted": True})
            start = now()
            first = await _pull(client, {})
            first_ms = (now() - start) * 1000
            previous = {r["uri"]: r["resultId"] for r in first["items"]}
            if _runs(workspace) != PROJECTS or len(previous) != PROJECTS * FILES:
                raise RuntimeError(f"first pull: {_runs(workspace)} runs, {len(previous)} docs")
            for _ in range(rounds):
                before = _runs(workspace)
                start = now()
                again = await _pull(client, previous)
                times.append((now() - start) * 1000)
                handler_runs.append(_runs(workspace) - before)
                kinds = {r["kind"] for r in again["items"]}
                if kinds != {"unchanged"} or len(again["items"]) != len(previous):
                    raise RuntimeError(f"re-pull was not all unchanged: {kinds}")
        finally:
            await client.stop()
    finally:
        remove(workspace)
    return [
        figure(NAME, "first pull (runs lint in 32 projects, cold runners)", "ms", first_ms),
        figure(NAME, "re-pull, nothing changed → response", "ms", times, goal_max=20,
               note=f"{PROJECTS} projects × {FILES + 1} files, {PROJECTS * FILES} documents "
                    "all `unchanged`"),
        figure(NAME, "re-pull, nothing changed → handler runs", "runs", handler_runs,
               goal_max=0),
    ]
