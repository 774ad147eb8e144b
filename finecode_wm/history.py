"""How long each (project, action) took in earlier ok runs, so the bar can weigh children by time.

`History` is the in-memory record (one per WM session). The terminal front end, which lives for
one run only, keeps it between runs in a small JSON file under the user's cache directory:
`load()` ignores a missing or corrupt file, `save()` replaces the file atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

from .paths import cache_dir

__all__ = ["History", "default_path", "load", "save"]

MAX_ENTRIES = 2000
SMOOTHING = 0.5  # weight of the newest run: recent runs matter, one odd run does not dominate
VERSION = 1


class History:
    """Expected seconds per (project, action), least recently recorded dropped past a bound."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.limit = limit
        self._seconds: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._seconds)

    def expected(self, project: str, action: str) -> float | None:
        return self._seconds.get((project, action))

    def record(self, project: str, action: str, seconds: float) -> None:
        """An ok run of `action` in `project` took `seconds` (running time, not runner start)."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        key = (project, action)
        old = self._seconds.pop(key, None)
        self._seconds[key] = seconds if old is None else SMOOTHING * seconds + (1 - SMOOTHING) * old
        while len(self._seconds) > self.limit:
            del self._seconds[next(iter(self._seconds))]

    def to_json(self) -> dict[str, object]:
        return {"version": VERSION,
                "entries": [[p, a, round(s, 4)] for (p, a), s in self._seconds.items()]}

    @classmethod
    def from_json(cls, data: object, limit: int = MAX_ENTRIES) -> History:
        """Entries that are not `[project, action, seconds]` are skipped; a wrong shape is empty."""
        history = cls(limit)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return history
        entries = data.get("entries")
        for entry in entries if isinstance(entries, list) else []:
            if (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                    and isinstance(entry[1], str) and isinstance(entry[2], int | float)
                    and not isinstance(entry[2], bool)):
                history.record(entry[0], entry[1], float(entry[2]))
        return history


def default_path() -> Path:
    """`$XDG_CACHE_HOME/finecode/history.json`, else `~/.cache/finecode/history.json`."""
    return cache_dir() / "history.json"


def load(path: Path) -> History:
    """The history kept at `path`; an unreadable or corrupt file counts as none."""
    try:
        return History.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return History()


def save(history: History, path: Path) -> None:
    """Write atomically (a temporary file renamed over the old one); failures are ignored.

    Two runs saving at once: the last one wins, which only loses some timings.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".history-", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(history.to_json(), file)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
