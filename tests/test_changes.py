"""`--changed-since`: changed files from a real git repository, mapped to projects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from finecode_wm.cli.changes import GitError, changed_files, dependents, projects_of


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("a", "b", "a/nested"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mod.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    return tmp_path


def names(repo: Path, ref: str) -> list[str]:
    return [str(p.relative_to(repo)) for p in changed_files(repo, ref)]


def test_committed_staged_unstaged_untracked_and_deleted(repo: Path) -> None:
    assert names(repo, "main") == []
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "a" / "mod.py").write_text("x = 2\n")
    git(repo, "commit", "-q", "-am", "committed")
    (repo / "b" / "mod.py").write_text("x = 3\n")  # unstaged
    (repo / "a" / "nested" / "new.py").write_text("")  # untracked
    (repo / "a" / "nested" / "mod.py").unlink()  # deleted
    (repo / "b" / "debug.log").write_text("")  # ignored
    assert names(repo, "main") == ["a/mod.py", "a/nested/mod.py", "a/nested/new.py", "b/mod.py"]


def test_changes_on_the_ref_since_the_branch_point_do_not_count(repo: Path) -> None:
    """From the merge base, as a pull request counts: work that landed on main meanwhile is
    not this branch's change."""
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "a" / "mod.py").write_text("x = 2\n")
    git(repo, "commit", "-q", "-am", "topic work")
    git(repo, "checkout", "-q", "main")
    (repo / "b" / "mod.py").write_text("x = 9\n")
    git(repo, "commit", "-q", "-am", "main work")
    git(repo, "checkout", "-q", "topic")
    assert names(repo, "main") == ["a/mod.py"]


def test_a_ref_without_common_history_is_compared_directly(repo: Path) -> None:
    empty = subprocess.run(["git", "mktree"], cwd=repo, input="", capture_output=True,
                           text=True, check=True).stdout.strip()
    unrelated = git(repo, "commit-tree", empty, "-m", "unrelated").strip()
    git(repo, "branch", "other", unrelated)
    assert names(repo, "other") == [".gitignore", "a/mod.py", "a/nested/mod.py", "b/mod.py"]


def test_from_a_subdirectory_of_the_repository(repo: Path) -> None:
    (repo / "b" / "mod.py").write_text("x = 5\n")
    assert [p.relative_to(repo) for p in changed_files(repo / "a", "HEAD")] == [Path("b/mod.py")]


@pytest.mark.parametrize(("ref", "said"), [("no-such-branch", "unknown git ref 'no-such-branch'"),
                                           ("--output=x", "not a git ref")])
def test_a_bad_ref_says_so(repo: Path, ref: str, said: str) -> None:
    with pytest.raises(GitError, match=said):
        changed_files(repo, ref)
    assert not (repo / "x").exists()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="rev-parse"):
        changed_files(tmp_path, "HEAD")


def test_projects_of_the_innermost_root() -> None:
    roots = [Path("/ws/a"), Path("/ws/a/nested"), Path("/ws/b")]
    files = [Path("/ws/a/nested/x.py"), Path("/ws/a/y.py"), Path("/ws/README.md"),
             Path("/ws/c/z.py")]
    assert projects_of(files, roots) == {Path("/ws/a/nested"), Path("/ws/a")}
    assert projects_of([Path("/ws/a/nested/x.py")], roots) == {Path("/ws/a/nested")}
    assert projects_of([Path("/ws/b/../a/y.py")], roots) == {Path("/ws/a")}


def test_dependents_transitively_and_through_cycles() -> None:
    graph = {Path("/app"): [Path("/lib")], Path("/lib"): [Path("/core")],
             Path("/tool"): [Path("/core")], Path("/x"): [Path("/y")], Path("/y"): [Path("/x")]}
    assert dependents({Path("/core")}, graph) == {Path("/core"), Path("/lib"), Path("/app"),
                                                  Path("/tool")}
    assert dependents({Path("/app")}, graph) == {Path("/app")}
    assert dependents({Path("/x")}, graph) == {Path("/x"), Path("/y")}


def test_a_submodule_path_selects_the_projects_it_is_or_holds() -> None:
    """git lists a submodule whose commit moved or whose work tree is dirty by its directory:
    a project rooted there, or under it, changed."""
    roots = [Path("/ws/sub"), Path("/ws/mono/a"), Path("/ws/mono/b"), Path("/ws/c")]
    assert projects_of([Path("/ws/sub")], roots) == {Path("/ws/sub")}
    assert projects_of([Path("/ws/mono")], roots) == {Path("/ws/mono/a"), Path("/ws/mono/b")}


def test_changes_inside_a_submodule_select_its_project(repo: Path, tmp_path: Path) -> None:
    inner = tmp_path.parent / f"{tmp_path.name}-inner"
    inner.mkdir()
    (inner / "mod.py").write_text("x = 1\n")
    git(inner, "init", "-q", "-b", "main")
    git(inner, "add", ".")
    git(inner, "commit", "-q", "-m", "inner")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner), "sub")
    git(repo, "commit", "-q", "-m", "submodule")
    (repo / "sub" / "mod.py").write_text("x = 2\n")  # the submodule's work tree is dirty
    changed = changed_files(repo, "HEAD")
    assert projects_of(changed, [repo / "a", repo / "sub"]) == {repo / "sub"}
