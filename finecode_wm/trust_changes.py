"""What changed in a trusted folder since it was trusted, said by project and file.

The trust key is one hash; next to it the store keeps a *manifest*: a short digest of each part
the key covers (each project's FineCode config, each interpreter, each Python file), so a folder
whose key no longer matches can be told apart part by part. Pure: the manifests come from
`trust.folder_state`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from typing import Any

__all__ = ["SHOWN", "changes", "manifest", "summary"]

DIGEST = 16  # hex characters kept per part: enough to notice a change, small in the store
SHOWN = 5  # changes named in a summary


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:DIGEST]  # a file's SHA-256
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST]


def manifest(parts: dict[str, Any]) -> dict[str, str]:
    """`{label: digest}` for each part of a folder's key (labels relative to the folder)."""
    shown: dict[str, str] = {}
    for root, entry in parts.get("projects", {}).items():
        prefix = "" if root == "." else f"{root}/"
        shown[f"{prefix}pyproject.toml [tool.finecode]"] = _short(entry)
    for python, entry in parts.get("interpreters", {}).items():
        shown[f"interpreter {python}"] = _short(entry)
    for relative, digest in parts.get("code", {}).items():
        shown[relative] = _short(digest)
    return shown


def _project(label: str, projects: dict[str, str]) -> str | None:
    """The name of the deepest project (by root relative to the folder) that holds `label`."""
    if label.startswith("interpreter "):
        return None
    path = PurePosixPath(label.split(" ", 1)[0])
    owners = [root for root in projects
              if root == "." or path == PurePosixPath(root) or path.is_relative_to(root)]
    return projects[max(owners, key=len)] if owners else None


def changes(old: dict[str, str], new: dict[str, str], projects: dict[str, str]) -> list[str]:
    """Each part that changed, was added or was removed, with the project that holds it
    (`projects`: root relative to the folder -> name), in label order."""
    found = []
    for label in sorted(old.keys() | new.keys()):
        if old.get(label) == new.get(label):
            continue
        how = "added" if label not in old else "removed" if label not in new else "changed"
        project = _project(label, projects)
        found.append(f"{label} {how}" + (f" (project {project})" if project else ""))
    return found


def summary(found: list[str]) -> str:
    """The first `SHOWN` changes, and how many more."""
    more = len(found) - SHOWN
    return "; ".join(found[:SHOWN]) + (f"; and {more} more" if more > 0 else "")
