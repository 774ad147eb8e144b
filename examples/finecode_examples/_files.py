"""Project file discovery shared by every example handler.

Kept in one place so that lint, format and stats agree on which files make up a
project; otherwise their progress totals would not be comparable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__"})


def python_files(root: Path, params: dict[str, Any] | None = None) -> list[Path]:
    """Return the project's ``*.py`` files, sorted, skipping tool and hidden dirs; only
    those under ``params["paths"]`` when the run names paths (``finecode-wm run lint src/``).

    ``os.walk`` is used instead of ``Path.rglob`` so that skipped directories are
    pruned rather than walked and filtered (a ``.venv`` holds thousands of files).
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            name for name in dirnames if name not in SKIPPED_DIRS and not name.startswith(".")
        )
        found.extend(Path(dirpath, name) for name in filenames if name.endswith(".py"))
    paths = selected_paths(params)
    if paths is not None and not any(root.is_relative_to(path) for path in paths):
        found = [f for f in found if any(f == p or f.is_relative_to(p) for p in paths)]
    return sorted(found)


def selected_paths(params: dict[str, Any] | None) -> list[Path] | None:
    """``params["paths"]``: the absolute files and directories a run is restricted to (a path
    that holds the project root covers all of it); None when the run names none."""
    paths = (params or {}).get("paths")
    if paths is None:
        return None
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"params 'paths' must be a list of absolute paths, got {paths!r:.80}")
    return [Path(p) for p in paths]


def relpath(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` with forward slashes, for stable results."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
