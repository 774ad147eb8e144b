"""Project file discovery shared by every example handler.

Kept in one place so that lint, format and stats agree on which files make up a
project; otherwise their progress totals would not be comparable.
"""

from __future__ import annotations

import os
from pathlib import Path

SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__"})


def python_files(root: Path) -> list[Path]:
    """Return the project's ``*.py`` files, sorted, skipping tool and hidden dirs.

    ``os.walk`` is used instead of ``Path.rglob`` so that skipped directories are
    pruned rather than walked and filtered (a ``.venv`` holds thousands of files).
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            name for name in dirnames if name not in SKIPPED_DIRS and not name.startswith(".")
        )
        found.extend(Path(dirpath, name) for name in filenames if name.endswith(".py"))
    return sorted(found)


def relpath(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` with forward slashes, for stable results."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
