"""Which projects a workspace holds: discovery under its folders, and their configs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from finecode_er.config import ActionConfig, ConfigError, load_project

__all__ = ["Project", "Workspace"]

SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    python: str
    actions: dict[str, ActionConfig]

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
                    projects[root] = Project(root, config.name, config.python or sys.executable,
                                             config.actions)
        self.projects, self.problems = projects, problems
        return list(problems.values())

    def contains(self, path: Path) -> bool:
        return any(path == f or path.is_relative_to(f) for f in self.folders)

    def listing(self) -> list[dict[str, object]]:
        return [p.to_json() for p in sorted(self.projects.values(), key=lambda p: p.root)]
