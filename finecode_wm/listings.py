"""Directory listings, reused while the directory's stat is unchanged.

A warm run walks every project twice (discovery looks for pyproject.toml files, the result
cache keys every file), and a long-lived server does it on every run and every diagnostics
pull: with nothing changed, that is hundreds of directory reads each time. An entry created,
removed or renamed gives its directory a new mtime, so the listing is read again then. A
directory changed in the last `RACY_NS` is read every time: a second change within the
clock's granularity may leave its mtime as it was (git's "racy" entries).
"""

from __future__ import annotations

import os
import time

__all__ = ["DIR", "FILE", "LINK", "RACY_NS", "Listings", "is_dir"]

RACY_NS = 2_000_000_000
DIR, FILE, LINK = "dir", "file", "link"
Listing = tuple[tuple[str, str], ...]  # (name, kind), sorted by name


class Listings:
    """The entries of the directories looked at, each with the stat it had then."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[int, int, int, int], Listing]] = {}

    def entries(self, path: str, st: os.stat_result) -> Listing:
        """The entries of directory `path`, whose stat is `st`: `(name, kind)` sorted by name,
        kind `DIR`, `FILE` or `LINK`. What a symlink leads to is not kept: it can change
        without its directory changing (`is_dir` asks each time). Raises `OSError` as
        `os.scandir` does."""
        signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == signature:
            return seen[1]
        with os.scandir(path) as found:
            listed = tuple(sorted((entry.name, _kind(entry)) for entry in found))
        if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - RACY_NS:
            self._seen[path] = (signature, listed)
        return listed


def _kind(entry: os.DirEntry[str]) -> str:
    try:
        if entry.is_symlink():
            return LINK
        return DIR if entry.is_dir(follow_symlinks=False) else FILE
    except OSError:
        return FILE


def is_dir(path: str, kind: str) -> bool:
    """Whether the entry at `path` of `kind` is a directory, through a symlink too."""
    return kind == DIR or (kind == LINK and os.path.isdir(path))
