"""`--changed-since REF`: which projects have files that changed since a git ref.

A file counts as changed when it differs between the merge base of REF and HEAD (what a pull
request changes, as `git diff REF...` counts it) and the working tree, staged or not, or when it
is untracked and not ignored. Each changed file belongs to the innermost project whose root
holds it; a project that declares `depends_on` a changed project is selected too, transitively.
A file outside every project selects nothing.

Reading git is I/O at the edge (`changed_files`); the mapping (`projects_of`, `dependents`) is
pure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["GitError", "changed_files", "dependents", "projects_of"]

GIT_TIMEOUT = 60.0
# Never run a command the repository's own git config names (a hostile repository may set one):
# listing changes needs no file-system monitor.
_SAFE = ("-c", "core.fsmonitor=false", "-c", "core.quotepath=off")


class GitError(Exception):
    """git could not answer: not a repository, an unknown ref, no git at all."""


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *_SAFE, *args], cwd=cwd, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed (--changed-since needs it)") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} failed: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        raise GitError(f"git {args[0]}: {message}")
    return done.stdout.decode(errors="surrogateescape")


def changed_files(folder: Path, ref: str) -> list[Path]:
    """Absolute paths of the files changed since `ref` in the repository holding `folder`
    (see the module docstring); `GitError` with git's own message when git cannot tell."""
    if ref.startswith("-"):
        raise GitError(f"{ref!r} is not a git ref (it would be read as an option)")
    top = Path(_git(["rev-parse", "--show-toplevel"], folder).strip())
    _verify(ref, top)
    try:
        base = _git(["merge-base", ref, "HEAD"], top).strip()
    except GitError:  # no common history (a shallow clone, say): compare with the ref itself
        base = ref
    names = _git(["diff", "--name-only", "--no-renames", "-z", base, "--"], top).split("\0")
    names += _git(["ls-files", "--others", "--exclude-standard", "-z"], top).split("\0")
    return sorted({top / name for name in names if name})


def _verify(ref: str, top: Path) -> None:
    """An unknown ref is the person's mistake: said with git's words."""
    try:
        _git(["rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"], top)
    except GitError as exc:
        raise GitError(f"unknown git ref {ref!r} ({exc}); in CI, fetch it (a shallow checkout "
                       "needs fetch-depth: 0)") from None


def projects_of(files: Iterable[Path], roots: Iterable[Path]) -> set[Path]:
    """The innermost root holding each file (files outside every root select nothing).

    git names a submodule by its directory alone (a commit moved, or its work tree is dirty):
    that path is a project's root itself, or holds projects, and selects every one of them.
    """
    known = set(roots)
    found: set[Path] = set()
    for path in files:
        path = Path(os.path.normpath(path))
        found.update(root for root in known if root.is_relative_to(path))
        for parent in path.parents:
            if parent in known:
                found.add(parent)
                break
    return found


def dependents(selected: Iterable[Path], depends_on: Mapping[Path, Iterable[Path]]) -> set[Path]:
    """`selected` and every project that depends on one of them, transitively."""
    users: dict[Path, set[Path]] = {}
    for project, targets in depends_on.items():
        for target in targets:
            users.setdefault(target, set()).add(project)
    found = set(selected)
    todo = list(found)
    while todo:
        for user in users.get(todo.pop(), ()):
            if user not in found:
                found.add(user)
                todo.append(user)
    return found
