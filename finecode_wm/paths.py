"""Where FineCode keeps its own files in the user's home: never inside a workspace."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cache_dir", "config_dir", "folder_problem"]


def _xdg(name: str, fallback: str, env: Mapping[str, str] | None) -> Path:
    """`$XDG_<name>/finecode` when it is an absolute path (as the spec asks), else the default."""
    base = (os.environ if env is None else env).get(name, "")
    return (Path(base) if os.path.isabs(base) else Path.home() / fallback) / "finecode"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Run times, the runner's import directory: safe to delete."""
    return _xdg("XDG_CACHE_HOME", ".cache", env)


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """What a person decided (trusted folders)."""
    return _xdg("XDG_CONFIG_HOME", ".config", env)


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be a workspace folder (`does not exist`, `is not a directory`), or
    None: said the same way by every command that takes one."""
    if folder.is_dir():
        return None
    return "is not a directory" if folder.exists() else "does not exist"
