"""Where a terminal run applies: the workspace found from the current directory, and the
projects that own the paths a person names (`finecode-wm run lint src/ tests/x.py`).

Reads only `pyproject.toml` files (through `workspace.examine`), never project code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..workspace import examine

__all__ = ["NotInProject", "Targets", "is_project", "project_upward", "repository_root",
           "split_words", "targets"]


def repository_root(start: Path) -> Path | None:
    """The top of the git work tree holding `start` (the nearest directory upward with a `.git`
    entry, a directory or a worktree's file), as `git rev-parse --show-toplevel` finds it."""
    for directory in (start, *start.parents):
        if os.path.lexists(directory / ".git"):
            return directory
    return None


def is_project(directory: Path) -> bool:
    """A FineCode project (broken ones included): its pyproject.toml has `[tool.finecode]`, or
    mentions FineCode and cannot be read."""
    found = examine(directory)
    return found is not None and (found.project is not None or found.problem is not None)


def project_upward(start: Path, check: Callable[[Path], bool] = is_project) -> Path | None:
    """The nearest project in `start`'s parents, not above the top of its git work tree (as
    ruff finds its config and git its repository); None when there is none."""
    top = repository_root(start)
    if top == start:
        return None
    for directory in start.parents:
        if check(directory):
            return directory
        if directory == top:
            break
    return None


def _looks_like_path(word: str) -> bool:
    return word in (".", "..") or "/" in word or os.sep in word


def split_words(words: Iterable[str], defined: Callable[[str], bool],
                exists: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """`run`'s positional words as (actions, paths). A word is a path when it has a path
    separator (`src/`, `./lint`), is `.` or `..`, or names an existing file or directory and
    no action of the workspace; every other word is an action."""
    actions: list[str] = []
    paths: list[str] = []
    for word in words:
        is_path = _looks_like_path(word) or (not defined(word) and exists(word))
        (paths if is_path else actions).append(word)
    return actions, paths


class NotInProject(ValueError):
    """A named path that no project owns or holds: bad input."""


@dataclass(frozen=True)
class Targets:
    """The projects a run on paths selects (in the order first named), and whether any of
    them runs on part of itself only (then handlers get the paths)."""

    projects: list[Path]
    partial: bool


def targets(paths: Iterable[Path], roots: Iterable[Path]) -> Targets:
    """The projects of absolute, resolved `paths`: for each path, the deepest project that
    holds it (on that path only, unless the path is its root), and every project under it
    (whole). Raises `NotInProject` for a path in no project and above none."""
    known = sorted(set(roots))
    selected: dict[Path, None] = {}
    partial = False
    for path in paths:
        owners = [r for r in known if path == r or path.is_relative_to(r)]
        below = [r for r in known if r != path and r.is_relative_to(path)]
        if not owners and not below:
            raise NotInProject(f"{path} is in no FineCode project and holds none")
        if owners:
            owner = max(owners, key=lambda r: len(r.parts))
            selected[owner] = None
            partial = partial or owner != path
        selected.update(dict.fromkeys(below))
    return Targets(list(selected), partial)
