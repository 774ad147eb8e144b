"""Trust covers what runs: after `trust`, no change in a folder runs unless it revokes the trust
or the runner refuses to load it (issue: each of these ran new repository code while `list`
still said `trusted`).

Every case trusts a workspace through the store, then changes it the way the issue did. The
changed code leaves a marker (outside the workspace) when it runs. A server that was running
(warm runner, handlers loaded) pulls diagnostics; a restarted server warms up and pulls; none
may leave a marker. Keyed changes make `list` say `changed`, and an explicit run (consent) then
does run them: the marker appears, so the case can fail. Refused ones (bytecode) stay `trusted`
and are not loaded even when asked; a stock `import` of the same directory does run them.
"""

from __future__ import annotations

import asyncio
import json
import os
import py_compile
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import cache_from_source
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from finecode_wm.trust import TrustStore, folder_key
from finecode_wm.workspace import Workspace

from .lsp_client import RecordingClient
from .test_lsp import plain
from .test_trust import Setup, hint, wm

pytestmark = pytest.mark.timeout(90)

BENIGN = "async def run(params, ctx):\n    return 'good'\n"


def evil(marker: Path, result: str = "evil") -> str:
    """Module code that leaves `marker` when it is imported."""
    return (f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\n"
            f"async def run(params, ctx):\n    return {result!r}\n")


def script(path: Path, *, touch: Path | None = None, padding: int = 0) -> None:
    """A `python` that is a shell script starting the real interpreter (touching a marker)."""
    lines = ["#!/bin/sh\n", "# padding\n" * (padding // 10 + 1 if padding else 0)]
    if touch is not None:
        lines.append(f'touch "{touch}"\n')
    lines.append(f'exec "{sys.executable}" "$@"\n')
    path.write_text("".join(lines))
    path.chmod(0o755)


def compiled(source: str, target: Path, **options: Any) -> None:
    """Bytecode of `source` at `target` (compiled from a scratch file)."""
    with tempfile.TemporaryDirectory() as scratch:
        src = Path(scratch) / "m.py"
        src.write_text(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        py_compile.compile(str(src), cfile=str(target), doraise=True, **options)


@dataclass
class Case:
    name: str
    keyed: bool  # the key changes (else: the runner refuses what changed)
    prepare: Callable[[Setup, Path], tuple[str, str | None]]  # -> (handler source, python)
    change: Callable[[Setup, Path], None]


def marker(setup: Setup, case: str) -> Path:
    return setup.markers / case


# -- the cases, one per line of the issue ----------------------------------------------------


def _sourceless_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    compiled(BENIGN, setup.evil / "hmod.pyc")
    return "hmod:run", None


def _sourceless_change(setup: Setup, outside: Path) -> None:
    compiled(evil(marker(setup, "sourceless-pyc")), setup.evil / "hmod.pyc")


def _pycache_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    (setup.evil / "checks.py").write_text(BENIGN)
    return "checks:run", None


def _pycache_change(setup: Setup, outside: Path) -> None:
    """Compile an edit into an unchecked-hash cache entry, then restore the source."""
    source = setup.evil / "checks.py"
    source.write_text(evil(marker(setup, "unchecked-pycache")))
    py_compile.compile(str(source), cfile=cache_from_source(str(source)), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    source.write_text(BENIGN)


def _subdir_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    target = outside / "sub"
    target.mkdir()
    (target / "__init__.py").write_text("")
    (target / "mod.py").write_text(BENIGN)
    (setup.evil / "hpkg").mkdir()
    (setup.evil / "hpkg" / "__init__.py").write_text("")
    (setup.evil / "hpkg" / "sub").symlink_to(target, target_is_directory=True)
    return "hpkg.sub.mod:run", None


def _subdir_change(setup: Setup, outside: Path) -> None:
    (outside / "sub" / "mod.py").write_text(evil(marker(setup, "symlinked-subdir")))


def _link_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    (setup.evil / "checks.py").write_text(BENIGN)
    (setup.evil / "py").symlink_to(sys.executable)
    return "checks:run", "py"


def _link_change(setup: Setup, outside: Path) -> None:
    script(outside / "other.sh", touch=marker(setup, "python-symlink"))
    (setup.evil / "py").unlink()
    (setup.evil / "py").symlink_to(outside / "other.sh")


def _big_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    (setup.evil / "checks.py").write_text(BENIGN)
    script(setup.evil / "python", padding=(1 << 20) + 4096)
    return "checks:run", "python"


def _big_change(setup: Setup, outside: Path) -> None:
    script(setup.evil / "python", padding=(1 << 20) + 4096, touch=marker(setup, "big-script"))


def _helper_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    (setup.evil / "checks.py").write_text("import helpers\n\n" + BENIGN)
    (setup.evil / "helpers.py").write_text("VALUE = 1\n")
    return "checks:run", None


def _helper_change(setup: Setup, outside: Path) -> None:
    (setup.evil / "helpers.py").write_text(evil(marker(setup, "helper")))


def _pth_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    (setup.evil / "checks.py").write_text(BENIGN)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(setup.evil / ".venv")],
                   check=True, timeout=60)
    return "checks:run", ".venv/bin/python"


def _pth_change(setup: Setup, outside: Path) -> None:
    (site,) = (setup.evil / ".venv" / "lib").glob("python*/site-packages")
    (site / "zz_evil.pth").write_text(
        f"import pathlib; pathlib.Path({str(marker(setup, 'venv-pth'))!r}).touch()\n")


def _shared_prepare(setup: Setup, outside: Path) -> tuple[str, str | None]:
    (setup.evil / "checks.py").write_text(BENIGN)
    (setup.workspace / "shared").mkdir()
    script(setup.workspace / "shared" / "x.sh")
    return "checks:run", "../shared/x.sh"


def _shared_change(setup: Setup, outside: Path) -> None:
    script(setup.workspace / "shared" / "x.sh", touch=marker(setup, "shared-script"))


CASES = [
    Case("sourceless-pyc", False, _sourceless_prepare, _sourceless_change),
    Case("unchecked-pycache", False, _pycache_prepare, _pycache_change),
    Case("symlinked-subdir", True, _subdir_prepare, _subdir_change),
    Case("python-symlink", True, _link_prepare, _link_change),
    Case("big-script", True, _big_prepare, _big_change),
    Case("helper", True, _helper_prepare, _helper_change),
    Case("venv-pth", True, _pth_prepare, _pth_change),
    Case("shared-script", True, _shared_prepare, _shared_change),
]


# -- driving it the way users hit it ---------------------------------------------------------


def make(tmp_path: Path, case: Case) -> tuple[Setup, Path]:
    setup = Setup(tmp_path / "ws", tmp_path / "markers", tmp_path / "config")
    setup.markers.mkdir()
    setup.evil.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    source, python = case.prepare(setup, outside)
    config = f"python = {json.dumps(python)}\n" if python else ""
    (setup.evil / "pyproject.toml").write_text(
        f"[tool.finecode]\n{config}[tool.finecode.actions.lint]\n"
        f"handlers = [{{ source = {json.dumps(source)} }}]\n")
    return setup, outside


def trust(setup: Setup) -> None:
    """What `finecode-wm trust` stores, without its process start."""
    workspace = Workspace([setup.workspace])
    folder = workspace.folders[0]
    TrustStore(setup.config_home / "finecode" / "trust.json").set(
        folder, folder_key(workspace, folder))


def listed(setup: Setup) -> set[str]:
    done = setup.cli("list", "--json", "--workspace", str(setup.workspace))
    return {p["trust"] for p in json.loads(done.stdout)}


async def pull(client: RecordingClient) -> None:
    await asyncio.wait_for(client.workspace_diagnostic_async(
        types.WorkspaceDiagnosticParams(previous_result_ids=[])), 30)


async def lint(client: RecordingClient, setup: Setup) -> dict[str, Any]:
    result = plain(await client.protocol.send_request_async(
        "runBatch", {"actions": ["lint"], "projects": [str(setup.evil)]}))
    assert isinstance(result, dict)
    (entry,) = result["results"]
    assert isinstance(entry, dict)
    return entry


def trust_messages(client: RecordingClient) -> list[str]:
    return [m.message for m in client.messages if "finecode-wm trust" in m.message]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_trusted_workspace_never_runs_a_change_it_does_not_cover(
        tmp_path: Path, case: Case) -> None:
    setup, outside = make(tmp_path, case)
    trust(setup)

    async with wm(setup) as client:  # running, trusted: warm runner, handlers loaded by a pull
        await pull(client)
        assert trust_messages(client) == [] and setup.marks() == set()
        case.change(setup, outside)
        assert listed(setup) == ({"changed"} if case.keyed else {"trusted"})
        await pull(client)
        assert setup.marks() == set(), "a pull after the change ran it"

    async with wm(setup) as client:  # restarted: the warm-up, then a pull
        if case.keyed:
            assert "changed since it was trusted" in await hint(client)
        await pull(client)
        assert setup.marks() == set(), "the warm-up or a pull after a restart ran the change"
        entry = await lint(client, setup)  # asked for: consent
        if case.keyed:
            assert setup.marks() == {case.name}, f"the change never ran, even asked: {entry}"
            return
        assert setup.marks() == set(), f"an explicit run loaded refused bytecode: {entry}"

    if case.name == "sourceless-pyc":
        assert entry["status"] == "failed" and "compiled-only" in entry["error"], entry
    else:
        assert entry["status"] == "ok" and entry["result"] == "good", entry
    stock = subprocess.run([sys.executable, "-c", f"import {entry_module(case)}"],
                           cwd=setup.evil, capture_output=True, text=True, timeout=30,
                           env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert stock.returncode == 0, stock.stderr
    assert setup.marks() == {case.name}, "a stock import runs it: the case can fail"


def entry_module(case: Case) -> str:
    return "hmod" if case.name == "sourceless-pyc" else "checks"
