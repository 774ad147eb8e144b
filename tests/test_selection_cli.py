"""`finecode-wm run --changed-since REF` and `--shard I/N` on a real git repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .cached import make_workspace
from .conftest import probe_env
from .test_changes import git

pytestmark = pytest.mark.timeout(120)

DEPENDENT = """[project]
name = "p4"

[tool.finecode]
depends_on = ["../p1"]

[tool.finecode.actions.local]
handlers = [{ source = "checks:run" }]
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = make_workspace(tmp_path / "ws")
    (ws / "p4").mkdir()
    (ws / "p4" / "pyproject.toml").write_text(DEPENDENT)
    for name in ("checks.py", "helpers.py"):
        (ws / "p4" / name).write_text((ws / "p1" / name).read_text())
    (ws / ".gitignore").write_text("logs/\n")
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", ".")
    git(ws, "commit", "-q", "-m", "base")
    return ws


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finecode_wm", "run", "local", *args],
                          cwd=ws, env=probe_env() | {"XDG_CACHE_HOME": str(ws.parent / "cache")},
                          capture_output=True, text=True, timeout=100)


def ran(done: subprocess.CompletedProcess[str]) -> list[str]:
    result: dict[str, Any] = json.loads(done.stdout)
    return sorted(os.path.basename(e["project"]) for e in result["results"])


def test_nothing_changed_runs_nothing_and_passes(ws: Path) -> None:
    done = cli(ws, "--changed-since", "HEAD", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] == []
    assert "0 changed file(s), 0 of 4 project(s) to run" in done.stderr


@pytest.mark.parametrize("narrowing", [["--changed-since", "HEAD"], ["--shard", "9/9"]])
def test_nothing_to_run_still_writes_a_sarif_log(ws: Path, narrowing: list[str]) -> None:
    """A CI job that uploads the SARIF file fails on an empty one: nothing to run is a valid
    log with no results, as a run with no findings prints."""
    done = cli(ws, *narrowing, "--output-format", "sarif")
    assert done.returncode == 0, done.stderr
    log = json.loads(done.stdout)
    assert log["version"] == "2.1.0" and log["runs"][0]["results"] == []


def test_a_change_runs_its_project_and_its_declared_dependents(ws: Path) -> None:
    (ws / "p2" / "c.py").write_text("y = 3\n")
    assert ran(cli(ws, "--changed-since", "HEAD", "--json")) == ["p2"]
    git(ws, "commit", "-q", "-am", "p2 work")
    (ws / "p1" / "new.py").write_text("")  # untracked, in the project p4 depends on
    done = cli(ws, "--changed-since", "HEAD~1", "--json")
    assert ran(done) == ["p1", "p2", "p4"], done.stderr
    assert "2 changed file(s), 3 of 4 project(s) to run" in done.stderr


def test_a_bad_ref_exits_2_with_gits_words(ws: Path) -> None:
    done = cli(ws, "--changed-since", "no-such-ref")
    assert done.returncode == 2
    assert "unknown git ref 'no-such-ref'" in done.stderr and "fatal:" in done.stderr


def test_shards_cover_every_project_once(ws: Path) -> None:
    cli(ws)  # history for the balance
    jobs = [cli(ws, "--shard", f"{i}/3", "--json") for i in (1, 2, 3)]
    parts = [ran(job) for job in jobs]
    everything = [p for part in parts for p in part]
    assert sorted(everything) == ["p1", "p2", "p3", "p4"] and all(parts)
    splits = {re.search(r"\(split (\w+):", job.stderr).group(1) for job in jobs}  # type: ignore[union-attr]
    assert len(splits) == 1, "every job says it split the same way"
    assert parts == [ran(cli(ws, "--shard", f"{i}/3", "--json")) for i in (1, 2, 3)], \
        "deterministic"
    (ws / "p3" / "d.py").write_text("z = 2\n")
    changed = [ran(cli(ws, "--changed-since", "HEAD", "--shard", f"{i}/2", "--json"))
               for i in (1, 2)]
    assert sorted(changed, key=len) == [[], ["p3"]], "the changed projects are what is split"


@pytest.mark.parametrize("shard", ["0/2", "3/2", "two"])
def test_a_bad_shard_is_a_usage_error(ws: Path, shard: str) -> None:
    done = cli(ws, "--shard", shard)
    assert done.returncode == 2 and "--shard" in done.stderr and "I/N" in done.stderr
