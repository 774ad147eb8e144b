"""The example VS Code extension (examples/vscode) installs from its lockfile and compiles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parent.parent / "examples" / "vscode"
COMMAND_IDS = ("finecode.runAction", "finecode.runBatch", "finecode.listProjects")


def _run(args: list[str], cwd: Path) -> None:
    try:
        subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, timeout=240)
    except subprocess.CalledProcessError as exc:
        pytest.fail(
            f"{' '.join(args)} exited with {exc.returncode}\n"
            f"--- stdout\n{exc.stdout}\n--- stderr\n{exc.stderr}",
            pytrace=False,
        )


@pytest.mark.timeout(300)
def test_extension_compiles(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot build the VS Code extension example")
    work = tmp_path / "vscode"
    shutil.copytree(EXTENSION, work, ignore=shutil.ignore_patterns("node_modules", "out"))
    assert (work / "package-lock.json").is_file(), "examples/vscode must ship a package-lock.json"

    _run([npm, "ci", "--no-audit", "--no-fund"], work)
    _run([npm, "run", "compile"], work)

    compiled = work / "out" / "extension.js"
    assert compiled.is_file()
    source = compiled.read_text(encoding="utf-8")
    for command in (*COMMAND_IDS, "finecode.runActionPick", "finecode.runBatchPick"):
        assert f'"{command}"' in source, f"{command} missing from out/extension.js"
