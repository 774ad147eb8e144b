"""Where a terminal run applies: words as actions or paths, the projects that own paths, and
the nearest project above the current directory (pure logic, a few real directories)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm.cli.locate import (
    NotInProject,
    is_project,
    project_upward,
    repository_root,
    split_words,
    targets,
)

pytestmark = pytest.mark.timeout(30)

WS = Path("/ws")
A, SUB, B = WS / "a", WS / "a" / "sub", WS / "libs" / "b"
ROOTS = [A, SUB, B]


def test_words_split_into_actions_and_paths() -> None:
    existing = {"tests", "lint", "x.py"}
    actions, paths = split_words(["lint", "test", "tests", "src/", ".", "x.py", "./lint", "nope"],
                                 defined=lambda w: w in {"lint", "test"},
                                 exists=existing.__contains__)
    assert actions == ["lint", "test", "nope"], "an action wins over a file of its name"
    assert paths == ["tests", "src/", ".", "x.py", "./lint"]


def test_targets_owner_whole_or_partial() -> None:
    assert targets([A / "m.py"], ROOTS).projects == [A] and targets([A / "m.py"], ROOTS).partial
    nested = targets([SUB / "pkg"], ROOTS)
    assert nested.projects == [SUB], "the deepest project owns it"
    whole = targets([A], ROOTS)
    assert whole.projects == [A, SUB] and not whole.partial, "a project's root: all of it"
    above = targets([WS / "libs"], ROOTS)
    assert above.projects == [B] and not above.partial
    mixed = targets([B / "x.py", WS], ROOTS)
    assert mixed.projects == [B, A, SUB] and mixed.partial
    with pytest.raises(NotInProject, match="docs is in no FineCode project and holds none"):
        targets([WS / "docs"], ROOTS)


segments = st.lists(st.sampled_from(["a", "sub", "libs", "b", "x.py", "docs"]), max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(segments, min_size=1, max_size=4))
def test_every_selected_project_holds_or_lies_under_a_path(parts: list[list[str]]) -> None:
    paths = [WS.joinpath(*p) for p in parts]
    try:
        found = targets(paths, ROOTS)
    except NotInProject:
        assert any(not any(p.is_relative_to(r) or r.is_relative_to(p) for r in ROOTS)
                   for p in paths)
        return
    assert len(set(found.projects)) == len(found.projects)
    for project in found.projects:
        assert any(p.is_relative_to(project) or project.is_relative_to(p) for p in paths)
    assert found.partial == any(
        p not in ROOTS and any(p.is_relative_to(r) for r in ROOTS) for p in paths)


def test_project_upward_stops_at_the_repository(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    repo = outer / "repo"
    deep = repo / "proj" / "src" / "pkg"
    deep.mkdir(parents=True)
    (outer / "pyproject.toml").write_text("[tool.finecode]\n")
    (repo / "proj" / "pyproject.toml").write_text("[tool.finecode.actions.lint]\n"
                                                  "handlers = [{ source = 'm:f' }]\n")
    assert is_project(repo / "proj") and not is_project(repo)
    assert project_upward(deep) == repo / "proj"
    assert project_upward(repo / "proj") == outer, "no git: any parent"
    (repo / ".git").mkdir()
    assert repository_root(deep) == repo
    assert project_upward(repo / "proj") is None, "not above the work tree"
    assert project_upward(repo) is None
    assert project_upward(deep) == repo / "proj"
    (repo / "proj" / "pyproject.toml").write_text("[tool.finecode\nbroken finecode")
    assert project_upward(deep) == repo / "proj", "a broken project is a project"
