"""13. Trust re-check: the key of a trusted folder computed again before unasked work.

The WM decides afresh before every warm-up and diagnostics pull (an editor pulls about every
2 s), on its event loop. A generated monorepo of 72 projects with ~10 Python files each (a
package, tests, a helper outside any project, a shared `.venv` named by half of the projects,
non-Python files and a `.git` the walk skips). Figures: the first check (every file read and
hashed), a re-check with nothing changed (stats only: the digests are reused), and a re-check
after one file changed (one file read again).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from finecode_er.projectcode import skipped_dir
from finecode_wm.trust import RACY_NS, SessionTrust, TrustStore, folder_key, walk
from finecode_wm.workspace import Workspace

from .common import Figure, figure, now

NAME = "trust_recheck"
TITLE = "Trust re-check with nothing changed (72 projects × ~10 files)"
PROJECTS = 72
MODULES = 6


def _workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fcbench-trust-"))
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    for i in range(5):
        (site / f"dep{i}.pth").write_text(f"/opt/dep{i}\n")
        (site / f"dep{i}").mkdir()
        (site / f"dep{i}" / "__init__.py").write_text("")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "tools" / "shared_helpers.py").write_text("VALUE = 1\n")
    for i in range(PROJECTS):
        project = root / f"p{i:03d}"
        package = project / f"pkg{i:03d}"
        (project / "tests").mkdir(parents=True)
        package.mkdir()
        python = 'python = "../.venv/bin/python"\n' if i % 2 else ""
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "p{i:03d}"\n[tool.finecode]\n{python}'
            '[tool.finecode.actions.lint]\nhandlers = [{ source = "checks:run" }]\n')
        (project / "checks.py").write_text("async def run(params, ctx):\n    return 1\n")
        (project / "README.md").write_text("# project\n")
        (package / "__init__.py").write_text("")
        for j in range(MODULES):
            (package / f"mod{j}.py").write_text(f"def f{j}(x):\n    return x + {j}\n" * 20)
        (project / "tests" / "test_mods.py").write_text("def test_it():\n    assert True\n")
    return root


def _samples(check: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = now()
        check()
        times.append((now() - start) * 1000)
    return times


async def run(quick: bool) -> list[Figure]:
    return await asyncio.to_thread(_measure, 20 if quick else 100)


def _measure(rounds: int) -> list[Figure]:
    root = _workspace()
    config = Path(tempfile.mkdtemp(prefix="fcbench-trust-config-"))
    try:
        workspace = Workspace([root])
        folder = workspace.folders[0]
        store = TrustStore(config / "trust.json")
        time.sleep(RACY_NS / 1e9 + 0.1)  # files this fresh are re-read by design (racy)
        store.set(folder, folder_key(workspace, folder))
        files = sum(1 for _ in walk(root, lambda n: n.endswith(".py"),
                                    lambda p: skipped_dir(os.path.basename(p))))
        session = SessionTrust(store)
        start = now()
        first = session.decide(workspace)
        first_ms = (now() - start) * 1000
        if not first.trusted:
            raise RuntimeError(f"the generated folder is not trusted: {first.states}")
        unchanged = _samples(lambda: session.decide(workspace).trusted or _fail(), rounds)
        edited = root / "p000" / "pkg000" / "mod0.py"
        one_changed = []
        for i in range(min(rounds, 20)):
            edited.write_text(f"VALUE = {i}\n")
            start = now()
            if session.decide(workspace).trusted:
                raise RuntimeError("an edit did not revoke the trust")
            one_changed.append((now() - start) * 1000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(config, ignore_errors=True)
    note = (f"{PROJECTS} projects, {files} keyed `.py` files, a shared venv (6 start-up "
            f"hooks) named by half of them; {os.cpu_count()} CPUs; the whole decision (store "
            "read included), on one thread")
    return [
        figure(NAME, "first check (every file hashed)", "ms", first_ms),
        figure(NAME, "re-check, nothing changed", "ms", unchanged, goal_max=50, note=note),
        figure(NAME, "re-check, one file changed", "ms", one_changed),
    ]


def _fail() -> bool:
    raise RuntimeError("the trust was lost with nothing changed")
