"""Which projects a workspace holds: discovery under its folders, and their configs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from finecode_er.config import WM_PYTHON, ActionConfig, ConfigError, ProjectConfig, load_project

__all__ = ["Environment", "Project", "Workspace"]

SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__"}
SKIPPED_IN_PACKAGES = {"__pycache__"}


@dataclass(frozen=True)
class Environment:
    """What runners are shared by: an interpreter (and, for `isolated = true`, one project)."""

    python: str
    isolated: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.python} ({self.isolated.name})" if self.isolated else self.python


def _signature(paths: list[Path]) -> str:
    """Sizes and mtimes of files: changes when any of them is edited, added or removed."""
    parts = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            parts.append(f"{path}:-")
            continue
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def sources_of(actions: dict[str, ActionConfig]) -> list[str]:
    return [h.source for action in actions.values() for h in action.handlers]


def local_handler_files(root: Path, sources: Iterable[str]) -> list[Path]:
    """Files of the handler modules that resolve under `root`: the project's own handler code.

    `checks:run` is `root/checks.py`; `pkg.sub:run` is every `.py` file of `root/pkg/`. Handlers
    from installed packages resolve elsewhere and are not the project's own code.
    """
    files: set[Path] = set()
    for top in sorted({source.partition(":")[0].partition(".")[0] for source in sources} - {""}):
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
    config_signature: str = field(default="", compare=False)

    @classmethod
    def from_config(cls, config: ProjectConfig) -> Project:
        root = config.root
        return cls(root, config.name, config.python or sys.executable, config.actions,
                   config.isolated, tuple(local_handler_files(root, sources_of(config.actions))),
                   _signature([root / "pyproject.toml"]))

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

    def config_changed(self) -> bool:
        return _signature([self.root / "pyproject.toml"]) != self.config_signature

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.root), "name": self.name, "actions": sorted(self.actions)}


def _candidate_dirs(folder: Path) -> list[Path]:
    """Directories with a pyproject.toml, skipping tool and hidden directories."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        if "pyproject.toml" in files:
            found.append(Path(current))
    return found


class Workspace:
    """The projects of a set of workspace folders; a broken config never hides the others."""

    def __init__(self, folders: list[Path] | None = None) -> None:
        self.folders: list[Path] = []
        self.projects: dict[Path, Project] = {}
        self.problems: dict[Path, str] = {}
        if folders:
            self.set_folders(folders)

    def set_folders(self, folders: list[Path]) -> list[str]:
        """Rescan for `folders`; returns the config problems found (to show the user)."""
        self.folders = sorted({f.resolve() for f in folders})
        return self.rescan()

    def rescan(self) -> list[str]:
        projects: dict[Path, Project] = {}
        problems: dict[Path, str] = {}
        for folder in self.folders:
            for root in _candidate_dirs(folder):
                try:
                    config = load_project(root)
                except ConfigError as exc:
                    problems[root] = str(exc)
                    continue
                if config is not None:
                    projects[root] = Project.from_config(config)
        self.projects, self.problems = projects, problems
        return list(problems.values())

    def refresh(self, roots: list[Path]) -> list[str]:
        """Re-read the configs of these projects whose pyproject.toml changed on disk.

        Called before every run, so an edit takes effect on the next run whether or not the
        editor reports file changes. Returns new config problems.
        """
        problems = []
        for root in roots:
            project = self.projects.get(root)
            if project is None or not project.config_changed():
                continue
            try:
                config = load_project(root)
            except ConfigError as exc:
                del self.projects[root]
                self.problems[root] = str(exc)
                problems.append(str(exc))
                continue
            if config is None:
                del self.projects[root]
            else:
                self.projects[root] = Project.from_config(config)
        return problems

    def contains(self, path: Path) -> bool:
        return any(path == f or path.is_relative_to(f) for f in self.folders)

    def listing(self) -> list[dict[str, object]]:
        return [p.to_json() for p in sorted(self.projects.values(), key=lambda p: p.root)]
