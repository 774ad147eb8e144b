"""A workspace for the result cache's end-to-end tests.

Three projects run the example ruff `lint` (E and F); each also has `local`, a project-local
handler declared cacheable that runs a fake tool outside the projects (`tools/fake-tool`, its
release printed by `--version`) and logs every run outside the projects (`logs/<project>`),
so a test can count runs without changing a project's files.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

PYPROJECT = """[project]
name = "{name}"

[tool.finecode.actions.lint]
handlers = [{{ source = "finecode_examples.ruff:lint", config = {{ select = ["E", "F"] }} }}]

[tool.finecode.actions.local]
handlers = [{{ source = "checks:run" }}]
"""

CHECKS = '''
import subprocess
from pathlib import Path

from finecode_er.api import cacheable

from helpers import findings


def tool(root):
    return root.parent / "tools" / "fake-tool"


def ask(path):
    done = subprocess.run([str(path)], capture_output=True, text=True)
    return done.stdout.strip()


def release():
    return ask(tool(Path(__file__).resolve().parent))


@cacheable(version=release, inputs=lambda root: [tool(root)])
async def run(params, ctx):
    root = ctx.project_root
    with open(root.parent / "logs" / root.name, "a") as log:
        log.write("run\\n")
    return {"tool": ask(tool(root)), "diagnostics": findings(root)}
'''

HELPERS = '''
def findings(root):
    found = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "TO" + "DO" in line:
                shown = path.relative_to(root).as_posix()
                found.append({"path": shown, "line": number, "column": 1,
                              "code": "T1", "message": "a todo"})
    return found
'''

SOURCES = {
    "p1": {"pkg/a.py": "import os\n\nx = 1  # TODO\n"},  # F401
    "p2": {"pkg/b.py": "def f():\n    unused = 1\n    return 0\n", "c.py": "y = 2\n"},  # F841
    "p3": {"d.py": "z = undefined_name\n"},  # F821
}


def write_tool(root: Path, release: str) -> None:
    tool = root / "tools" / "fake-tool"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text(f"#!{sys.executable}\nprint({release!r})\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def make_workspace(root: Path) -> Path:
    (root / "logs").mkdir(parents=True)
    write_tool(root, "fake-tool 1.0")
    for name, sources in SOURCES.items():
        project = root / name
        project.mkdir()
        (project / "pyproject.toml").write_text(PYPROJECT.format(name=name))
        (project / "checks.py").write_text(CHECKS)
        (project / "helpers.py").write_text(HELPERS)
        for relative, text in sources.items():
            (project / relative).parent.mkdir(parents=True, exist_ok=True)
            (project / relative).write_text(text)
    return root


def runs(root: Path, project: str) -> int:
    log = root / "logs" / project
    return len(log.read_text().splitlines()) if log.exists() else 0


def findings(result: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Each entry's result by (project name, action), without timing or cache marks: what must be
    identical with and without the cache."""
    return {(os.path.basename(e["project"]), e["action"]): e.get("result")
            for e in result["results"]}


def cached(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(os.path.basename(e["project"]), e["action"]) for e in result["results"]
            if e.get("cached")}
