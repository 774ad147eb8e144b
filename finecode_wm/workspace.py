"""Which projects a workspace holds: discovery under its folders, and their configs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finecode_er.config import (
    WM_PYTHON,
    ActionConfig,
    ConfigError,
    ProjectConfig,
    UnreadableConfig,
    declared_actions,
    project_config,
    read_pyproject,
)
from finecode_er.projectcode import SKIPPED_DIRS, skipped_dir

from .listings import DIR, Listings, is_dir

__all__ = ["SKIPPED_DIRS", "Discovery", "Environment", "Found", "Project", "Reader", "Workspace",
           "examine"]

SKIPPED_IN_PACKAGES = {"__pycache__"}
Reader = Callable[[Path], dict[str, Any]]  # a pyproject.toml's path -> its parsed TOML


@dataclass(frozen=True)
class Environment:
    """What runners are shared by: an interpreter (and, for `isolated = true`, one project)."""

    python: str
    isolated: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.python} ({self.isolated.name})" if self.isolated else self.python


def _signature(paths: list[Path]) -> str:
    """Stats of files: changes when any of them is edited, added, removed or replaced. The
    ctime and inode are in it: an edit that keeps size and mtime (`touch -r`, `cp -p`, a
    rename over it) still changes them."""
    parts = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            parts.append(f"{path}:-")
            continue
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:"
                     f"{st.st_dev}")
    return "|".join(parts)


def sources_of(actions: dict[str, ActionConfig]) -> list[str]:
    return [h.source for action in actions.values() for h in action.handlers]


def local_handler_files(root: Path, sources: Iterable[str]) -> list[Path]:
    """Files of the handler modules that resolve under `root`: the project's own handler code.

    `checks:run` is `root/checks.py`; `pkg.sub:run` is every `.py` file of `root/pkg/`. Handlers
    from installed packages resolve elsewhere and are not the project's own code.
    """
    files: set[Path] = set()
    tops = {source.partition(":")[0].partition(".")[0] for source in sources}
    for top in sorted(t for t in tops if t.isidentifier()):  # never a path: stays in `root`
        module, package = root / f"{top}.py", root / top
        if package.is_dir():
            for current, dirs, names in os.walk(package):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_IN_PACKAGES)
                files.update(Path(current) / n for n in names if n.endswith(".py"))
        elif module.is_file():
            files.add(module)
    return sorted(files)


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    python: str
    actions: dict[str, ActionConfig]
    isolated: bool = False
    local_files: tuple[Path, ...] = field(default=(), compare=False)
    depends_on: tuple[Path, ...] = ()  # `depends_on`: roots whose changes this project sees

    @classmethod
    def from_config(cls, config: ProjectConfig) -> Project:
        root = config.root
        return cls(root, config.name, config.python or sys.executable, config.actions,
                   config.isolated, tuple(local_handler_files(root, sources_of(config.actions))),
                   config.depends_on)

    @property
    def environment(self) -> Environment:
        return Environment(self.python, self.root if self.isolated else None)

    def environment_for(self, action: str) -> Environment:
        """Where `action` runs: the project's environment, or FineCode's own interpreter for
        an action that says `python = "finecode"` (one that makes the project's venv)."""
        config = self.actions.get(action)
        if config is not None and config.python == WM_PYTHON:
            return Environment(sys.executable, self.root if self.isolated else None)
        return self.environment

    def code_version(self) -> str:
        """Changes when a project-local handler file changes: the runner then re-imports it."""
        return _signature(list(self.local_files))

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.root), "name": self.name, "actions": sorted(self.actions)}


@dataclass(frozen=True)
class Found:
    """What discovery made of one directory's `pyproject.toml`, as of its `signature`.

    At most one of: a `project`; a `problem` (a broken FineCode project, with the actions it
    `declares`, None when they cannot be told); a `skipped` file that cannot be read or parsed
    and does not mention FineCode. None of them: a pyproject without `[tool.finecode]`.
    """

    signature: str
    project: Project | None = None
    problem: str | None = None
    declares: frozenset[str] | None = None
    skipped: str | None = None


def examine(root: Path, cached: Found | None = None,
            read: Reader | None = None) -> Found | None:
    """Read `root`'s pyproject.toml (with `read`, by default `read_pyproject`), unless
    `cached` has the same stat (`_signature`); None when the file is gone.

    Never raises: whatever the file is, it becomes a `Found` of this directory only.
    """
    if not os.path.lexists(root / "pyproject.toml"):
        return None
    signature = _signature([root / "pyproject.toml"])
    if cached is not None and cached.signature == signature:
        return cached
    try:
        data = (read or read_pyproject)(root / "pyproject.toml")
    except UnreadableConfig as exc:
        if exc.mentions_finecode:
            return Found(signature, problem=str(exc))
        return Found(signature, skipped=f"skipped {exc}")
    try:
        config = project_config(root, data)
        project = None if config is None else Project.from_config(config)
    except ConfigError as exc:
        return Found(signature, problem=str(exc), declares=declared_actions(data))
    except OSError as exc:  # its handler files cannot be listed (a directory without access)
        return Found(signature, problem=f"{root / 'pyproject.toml'}: cannot list the project's "
                                        f"handler files: {exc}", declares=declared_actions(data))
    return Found(signature, project=project)


def _candidate_dirs(folder: Path, listings: Listings) -> list[Path]:
    """Directories with a pyproject.toml, skipping tool and hidden directories, in walk order
    (a directory, then its subdirectories by name). An unreadable directory is skipped.

    Symlinked directories are not entered: no loops, and nothing outside the folder is
    discovered through a link.
    """
    found = []
    stack = [os.fspath(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = listings.entries(current, os.stat(current))
        except OSError:
            continue
        subdirs, has_pyproject = [], False
        for name, kind in entries:
            if kind == DIR:
                if not skipped_dir(name):
                    subdirs.append(os.path.join(current, name))
            elif name == "pyproject.toml" and not is_dir(os.path.join(current, name), kind):
                has_pyproject = True
        if has_pyproject:
            found.append(Path(current))
        stack.extend(reversed(subdirs))
    return found


@dataclass(frozen=True)
class Discovery:
    """The outcome of one scan, made off the event loop and applied on it (`Workspace.apply`)."""

    folders: list[Path]
    found: dict[Path, Found]


class Workspace:
    """The projects of a set of workspace folders; a broken config never hides the others.

    `problems` are broken FineCode projects (a run that selects one fails); `skipped` are
    pyproject.toml files that cannot be read or parsed and do not mention FineCode (a warning).
    Scans only read the workspace's state, so one may run in a thread while the loop serves;
    the caller applies one scan at a time.
    """

    def __init__(self, folders: list[Path] | None = None, *,
                 read: Reader | None = None) -> None:
        """`read` parses a pyproject.toml (default `read_pyproject`; a terminal run passes one
        that keeps what it read between runs, `pyproject_index`)."""
        self.read = read
        self.folders: list[Path] = []
        self.projects: dict[Path, Project] = {}
        self.problems: dict[Path, str] = {}
        self.declares: dict[Path, frozenset[str] | None] = {}
        self.skipped: dict[Path, str] = {}
        self._found: dict[Path, Found] = {}
        self.listings = Listings()  # the folders' directories, walked again every scan
        if folders:
            self.set_folders(folders)

    def set_folders(self, folders: list[Path]) -> None:
        """Discover the projects of `folders` (on this thread)."""
        self.apply(self.scan(folders))

    def scan(self, folders: list[Path] | None = None) -> Discovery:
        """Walk `folders` for pyproject.toml files, or, without folders, look again at the
        ones known (the cheap check before every run). Files whose stat (`_signature`) did
        not change are not read again."""
        known = self._found
        if folders is None:
            resolved, roots = self.folders, list(known)
        else:
            resolved = sorted({f.resolve() for f in folders})
            roots = [root for folder in resolved
                     for root in _candidate_dirs(folder, self.listings)]
        found = {root: examine(root, known.get(root), self.read) for root in roots}
        return Discovery(resolved, {root: f for root, f in found.items() if f is not None})

    def apply(self, discovery: Discovery) -> None:
        found = discovery.found
        self.folders = discovery.folders
        self._found = found
        self.projects = {r: f.project for r, f in found.items() if f.project is not None}
        self.problems = {r: f.problem for r, f in found.items() if f.problem is not None}
        self.declares = {r: f.declares for r, f in found.items() if f.problem is not None}
        self.skipped = {r: f.skipped for r, f in found.items() if f.skipped is not None}

    def contains(self, path: Path) -> bool:
        return any(path == f or path.is_relative_to(f) for f in self.folders)

    def listing(self) -> list[dict[str, object]]:
        return [p.to_json() for p in sorted(self.projects.values(), key=lambda p: p.root)]
