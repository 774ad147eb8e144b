"""The result cache from the terminal: what is reused, what is never reused after an edit, and
several runs at once on one cache directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .cached import cached, findings, make_workspace, runs, write_tool
from .conftest import probe_env

pytestmark = pytest.mark.timeout(120)

EVERYTHING = {(p, a) for p in ("p1", "p2", "p3") for a in ("lint", "local")}
# A runner that would start fails the run: proof that a warm run starts none.
NO_RUNNERS = ("import sys, finecode_wm.runners.process as r\n"
              "async def refuse(self):\n"
              "    raise r.RunnerDied('a runner was started')\n"
              "r.RunnerProcess.start = refuse\n"
              "from finecode_wm.main import main\n"
              "main(sys.argv[1:])\n")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def env(ws: Path) -> dict[str, str]:
    return probe_env() | {"XDG_CACHE_HOME": str(ws.parent / "cache")}


def run(ws: Path, *args: str, no_runners: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-c", NO_RUNNERS] if no_runners else \
        [sys.executable, "-m", "finecode_wm"]
    done = subprocess.run([*command, "run", "lint", "local", "--json", *args], cwd=ws,
                          env=env(ws), capture_output=True, text=True, timeout=100)
    assert done.returncode == 1, done.stderr  # every project has findings
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["summary"]["failed"] == 0, result
    return result


def test_a_warm_run_reuses_everything_and_starts_no_runner(ws: Path) -> None:
    first = run(ws)
    assert cached(first) == set() and first["summary"]["cached"] == 0
    assert [runs(ws, p) for p in ("p1", "p2", "p3")] == [1, 1, 1]
    second = run(ws, no_runners=True)
    assert cached(second) == EVERYTHING and second["summary"]["cached"] == 6
    assert findings(second) == findings(first), "identical with and without the cache"
    assert second["summary"]["findings"] == first["summary"]["findings"] == 4
    assert all(e["status"] == "ok" and e["seconds"] == 0 for e in second["results"])
    assert [runs(ws, p) for p in ("p1", "p2", "p3")] == [1, 1, 1], "no handler ran"


def test_no_cache_runs_everything_and_finds_the_same(ws: Path) -> None:
    first = run(ws)
    bypassed = run(ws, "--no-cache")
    assert cached(bypassed) == set() and findings(bypassed) == findings(first)
    assert [runs(ws, p) for p in ("p1", "p2", "p3")] == [2, 2, 2]
    assert cached(run(ws)) == EVERYTHING, "the fresh results refreshed the cache"


@pytest.mark.parametrize("edit", ["file", "config", "handler", "helper", "tool"])
def test_never_reused_after_an_edit(ws: Path, edit: str) -> None:
    first = run(ws)
    assert cached(run(ws)) == EVERYTHING, "unchanged: reused (so the edit below is what counts)"
    p2 = ws / "p2"
    if edit == "file":
        (p2 / "c.py").write_text("import sys\ny = 2  # TODO\n")
    elif edit == "config":
        (p2 / "pyproject.toml").write_text((p2 / "pyproject.toml").read_text()
                                           .replace('select = ["E", "F"]', 'select = ["E"]'))
    elif edit == "handler":
        (p2 / "checks.py").write_text((p2 / "checks.py").read_text()
                                      .replace('"tool": ask(tool(root))',
                                               '"tool": ask(tool(root)) + "!"'))
    elif edit == "helper":
        (p2 / "helpers.py").write_text((p2 / "helpers.py").read_text()
                                       .replace('"a todo"', '"a todo, edited"'))
    else:
        write_tool(ws, "fake-tool 2.0")  # the tool every project's `local` runs
    after = run(ws)
    changed = {
        "file": {("p2", "lint"), ("p2", "local")},
        "config": {("p2", "lint"), ("p2", "local")},  # one pyproject.toml: both actions
        "handler": {("p2", "lint"), ("p2", "local")},  # a file of the project
        "helper": {("p2", "lint"), ("p2", "local")},
        "tool": {(p, "local") for p in ("p1", "p2", "p3")},
    }[edit]
    assert cached(after) == EVERYTHING - changed
    results = findings(after)
    if edit == "file":
        assert len(results[("p2", "lint")]["diagnostics"]) == 2  # F841 and F401 now
        assert results[("p2", "local")]["diagnostics"][-1]["path"] == "c.py"
    elif edit == "config":
        assert results[("p2", "lint")]["diagnostics"] == [], "F841 is not selected any more"
    elif edit == "handler":
        assert results[("p2", "local")]["tool"] == "fake-tool 1.0!"
    elif edit == "helper":
        assert results[("p2", "local")]["diagnostics"] == [] or all(
            d["message"] == "a todo, edited" for d in results[("p2", "local")]["diagnostics"])
        assert results[("p1", "local")]["diagnostics"][0]["message"] == "a todo"
    else:
        assert {results[(p, "local")]["tool"] for p in ("p1", "p2", "p3")} == {"fake-tool 2.0"}
    unchanged = {key: value for key, value in findings(first).items() if key not in changed}
    assert {key: results[key] for key in unchanged} == unchanged


@pytest.mark.parametrize("where", ["pyproject.toml", "ruff.toml", "pkg/ruff.toml"])
def test_never_reused_after_an_edit_to_a_ruff_config_it_extends(ws: Path, where: str) -> None:
    """A project's ruff config that `extend`s a shared one outside the project (a monorepo's
    base config): ruff reads that file too, so an edit to it is a miss."""
    config = ws / "p2" / where
    relative = "../" * where.count("/") + "../shared/base.toml"
    if where == "pyproject.toml":
        config.write_text(config.read_text() + f'\n[tool.ruff]\nextend = "{relative}"\n')
    else:
        config.write_text(f'extend = "{relative}"\n')
    (ws / "shared").mkdir()
    (ws / "shared" / "base.toml").write_text('extend = "more.toml"\n')
    (ws / "shared" / "more.toml").write_text("line-length = 100\n")
    first = run(ws)
    assert cached(run(ws)) == EVERYTHING
    (ws / "shared" / "more.toml").write_text("line-length = 10\n")  # two files away
    after = run(ws)
    assert ("p2", "lint") not in cached(after)
    assert cached(after) >= EVERYTHING - {("p2", "lint"), ("p2", "local")}
    codes = [d["code"] for d in findings(after)[("p2", "lint")]["diagnostics"]]
    assert "E501" in codes and codes != [
        d["code"] for d in findings(first)[("p2", "lint")]["diagnostics"]]


def test_a_failed_child_is_never_cached(ws: Path) -> None:
    (ws / "p1" / "helpers.py").write_text("def findings(root):\n    raise ValueError('no')\n")
    for attempt in (1, 2):
        done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "local", "--json",
                               "--project", "p1"], cwd=ws, env=env(ws), capture_output=True,
                              text=True, timeout=100)
        (entry,) = json.loads(done.stdout)["results"]
        assert entry["status"] == "failed" and "cached" not in entry
        assert runs(ws, "p1") == attempt


def test_several_runs_at_once_share_one_cache_directory(ws: Path) -> None:
    """Four terminals at once, cold: each runs everything, all store the same entries, and
    none sees a half-written one; then a fifth run reuses them all."""
    procs = [subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "lint", "local",
                               "--json"], cwd=ws, env=env(ws), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [json.loads(p.communicate(timeout=100)[0]) for p in procs]
    assert all(p.returncode == 1 for p in procs)
    assert all(r["summary"]["failed"] == 0 for r in results)
    assert all(findings(r) == findings(results[0]) for r in results)
    last = run(ws, no_runners=True)
    assert cached(last) == EVERYTHING and findings(last) == findings(results[0])
    entries = list((ws.parent / "cache" / "finecode" / "results").glob("*.json"))
    assert len(entries) == 6, "one entry per child: concurrent writers of a key leave one"


def test_a_cache_directory_that_cannot_be_written_is_said_once(ws: Path) -> None:
    """Runs still work and find the same; nothing is reused; the person is told, once."""
    blocked = ws.parent / "cache"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the cache directory should be")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "lint", "local",
                               "--json"], cwd=ws, env=env(ws), capture_output=True, text=True,
                              timeout=100)
        assert done.returncode == 1, done.stderr
        assert cached(json.loads(done.stdout)) == set()
        warnings = [line for line in done.stderr.splitlines() if "result cache" in line]
        assert len(warnings) == 1 and "not stored" in warnings[0], done.stderr
        assert "Traceback" not in done.stderr
