"""What discovery read of each `pyproject.toml`, kept between terminal runs.

A terminal run discovers the workspace anew in a new process: walking the folders is cheap,
parsing every project's TOML is not (most of discovery's time in a large workspace). The
index keeps, per file, the parts of the parsed TOML that discovery looks at (`[project] name`
and `[tool.finecode]`) and hands them back while the file's stat is unchanged, as the result
cache's digest index does for digests (`DigestIndex`: size, times, inode; a file changed in
the last 2 seconds is read again every time). Only what JSON carries exactly is kept; a file
that does not parse is read again every time, so its problem is said as before. The walk
itself is never skipped: a `pyproject.toml` added or removed is seen on the next run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from finecode_er.config import read_pyproject

from .cache import DigestIndex
from .paths import cache_dir

__all__ = ["PyprojectIndex", "index_path"]

KIND = "pyproject"


def index_path(folder: Path) -> Path:
    """Where the index of the workspace folder `folder` lives (in the user's cache directory,
    never in the workspace)."""
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "discovery" / f"pyprojects-{name}.index"


class PyprojectIndex(DigestIndex):
    """`read` is `read_pyproject` for discovery, answered from the index while a file's stat
    is unchanged."""

    KINDS = (KIND,)

    def read(self, path: Path) -> dict[str, Any]:
        kept = self._cached(path, KIND, _kept)
        if isinstance(kept, str) and kept.startswith("{"):
            data: dict[str, Any] = json.loads(kept)
            return data
        return read_pyproject(path)  # not kept (or gone since): read it, problems and all


def _kept(path: Path) -> str:
    """The parts of the parsed file discovery looks at, as JSON; "" when JSON cannot carry them
    exactly (a date in the config, say). Raises what `read_pyproject` raises: never kept."""
    data = read_pyproject(path)
    kept: dict[str, Any] = {}
    project = data.get("project")
    if isinstance(project, dict) and "name" in project:
        kept["project"] = {"name": project["name"]}
    tool = data.get("tool")
    if isinstance(tool, dict) and "finecode" in tool:
        kept["tool"] = {"finecode": tool["finecode"]}
    try:
        text = json.dumps(kept, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return ""
    return text if json.loads(text) == kept else ""
