"""Discovery with the parsed pyproject.toml files of earlier runs (`pyproject_index`): a file
whose stat is unchanged is not parsed again, and every change between two runs is seen."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from finecode_wm import pyproject_index, trust
from finecode_wm.pyproject_index import PyprojectIndex
from finecode_wm.workspace import Workspace

from .conftest import counted_reads

pytestmark = pytest.mark.timeout(30)

CONFIG = """[project]
name = "{name}"

[tool.finecode.actions.lint]
handlers = [{{ source = "checks:run", config = {{ level = {level} }} }}]
"""


def project(root: Path, name: str, level: int = 1, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(CONFIG.format(name=name, level=level) + extra)
    return root


class Run:
    """One terminal run's discovery: an index loaded from `path`, saved after the scan."""

    def __init__(self, folder: Path, path: Path, parsed: list[Path]) -> None:
        index = PyprojectIndex()
        index.load(path)
        self.workspace = Workspace(read=index.read)
        self.workspace.set_folders([folder])
        if index.dirty:
            index.save(path)
        self.parsed = list(parsed)
        parsed.clear()

    def shown(self) -> dict[str, Any]:
        return {p.name: (p.actions["lint"].to_json() if "lint" in p.actions else None)
                for p in self.workspace.projects.values()}


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`runs()` discovers `tmp_path/ws` as a new process would; files count as settled at once
    (no 2-second wait for the racy-write window) and every real parse is recorded."""
    monkeypatch.setattr(trust, "RACY_NS", 0)
    parsed = counted_reads(monkeypatch, pyproject_index)
    folder, path = tmp_path / "ws", tmp_path / "cache" / "pyprojects.index"
    folder.mkdir()
    return lambda: Run(folder, path, parsed)


def test_unchanged_files_are_not_parsed_again(tmp_path: Path, runs: Any) -> None:
    a = project(tmp_path / "ws" / "a", "a")
    project(tmp_path / "ws" / "b", "b", level=2)
    (tmp_path / "ws" / "plain").mkdir()
    (tmp_path / "ws" / "plain" / "pyproject.toml").write_text('[project]\nname = "plain"\n')
    first = runs()
    assert len(first.parsed) == 3
    second = runs()
    assert second.parsed == [] and second.shown() == first.shown()
    assert set(second.workspace.projects) == {a, tmp_path / "ws" / "b"}


def test_a_pyproject_added_removed_or_edited_between_two_runs_is_seen(
        tmp_path: Path, runs: Any) -> None:
    a = project(tmp_path / "ws" / "a", "a")
    b = project(tmp_path / "ws" / "b", "b")
    runs()
    c = project(tmp_path / "ws" / "nested" / "c", "c")
    (b / "pyproject.toml").unlink()
    project(a, "a", level=123)  # edited
    after = runs()
    assert set(after.workspace.projects) == {a, c}
    assert after.parsed == [a / "pyproject.toml", c / "pyproject.toml"]
    assert after.shown()["a"]["handlers"][0]["config"] == {"level": 123}
    stat = os.stat(a / "pyproject.toml")
    os.utime(a / "pyproject.toml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert runs().parsed == [a / "pyproject.toml"], "a new mtime alone reads it again"


def test_what_json_cannot_carry_and_broken_files_are_read_every_time(
        tmp_path: Path, runs: Any) -> None:
    dated = project(tmp_path / "ws" / "dated", "dated",
                    extra="\n[tool.finecode.actions.stats]\nhandlers = [{ source = \"s:run\", "
                          "config = { since = 2024-01-02 } }]\n")
    broken = tmp_path / "ws" / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[tool.finecode\n")
    first = runs()
    second = runs()
    for run in (first, second):
        assert set(run.parsed) == {dated / "pyproject.toml", broken / "pyproject.toml"}
        assert list(run.workspace.problems) == [broken]
    assert second.shown() == first.shown()
    assert second.workspace.problems == first.workspace.problems


def test_a_corrupt_index_is_an_empty_one(tmp_path: Path, runs: Any) -> None:
    a = project(tmp_path / "ws" / "a", "a")
    runs()
    (tmp_path / "cache" / "pyprojects.index").write_text("{not json")
    again = runs()
    assert again.parsed == [a / "pyproject.toml"] and set(again.workspace.projects) == {a}


def _rewrite_keeping_size_and_mtime(path: Path, old: str, new: str, *, rename: bool) -> None:
    """What `touch -r`, `cp -p` or `rsync -t` leave: new content, same size, same mtime."""
    assert len(old) == len(new)
    st = path.stat()
    text = path.read_text().replace(old, new)
    target = path.with_name(path.name + ".new") if rename else path
    target.write_text(text)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    if rename:
        os.replace(target, path)


@pytest.mark.parametrize("rename", [False, True], ids=["in-place", "renamed-over"])
def test_a_rescan_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path, rename: bool) -> None:
    """A server rescans with what it found before: an edited `[tool.finecode]` is never kept."""
    root = project(tmp_path / "ws" / "alpha", "alpha", level=1)
    workspace = Workspace([tmp_path / "ws"])
    _rewrite_keeping_size_and_mtime(root / "pyproject.toml", "level = 1", "level = 2",
                                    rename=rename)
    workspace.apply(workspace.scan())
    config = workspace.projects[root.resolve()].actions["lint"].to_json()
    assert config["handlers"][0]["config"] == {"level": 2}


def test_a_local_handler_edit_that_keeps_size_and_mtime_changes_the_code_version(
        tmp_path: Path) -> None:
    root = project(tmp_path / "alpha", "alpha")
    (root / "checks.py").write_text("async def run(params, ctx):\n    return 1\n")
    before = Workspace([tmp_path]).projects[root.resolve()].code_version()
    _rewrite_keeping_size_and_mtime(root / "checks.py", "return 1", "return 2", rename=False)
    assert Workspace([tmp_path]).projects[root.resolve()].code_version() != before
