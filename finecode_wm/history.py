"""How long each (project, action) took in earlier runs, so the bar can weigh children by time.

An entry is kept under (project, action) with a *signature* of what determines the work besides
its size: the action's config as the runner gets it and the project's handler code version. An
entry whose signature no longer matches is not used, and the next run replaces it. Size is the
units the run declared: the entry keeps seconds with that total, and a run declaring another
total expects the time scaled per unit (`Timing.for_total`).

`History` is the in-memory record (one per WM session). The terminal front end, which lives for
one run only, keeps it between runs in a small JSON file under the user's cache directory:
`load()` ignores a missing, corrupt or older-format file, `save()` replaces the file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from finecode_er.safefile import read_regular
from finecode_er.streams import non_negative

from .aggregation import Timing
from .paths import cache_dir

__all__ = ["ChildTimes", "History", "default_path", "load", "save", "signature"]

MAX_ENTRIES = 2000
MAX_BYTES = 64 * 1024 * 1024  # far above what MAX_ENTRIES take
SMOOTHING = 0.5  # weight of the newest run: recent runs matter, one odd run does not dominate
VERSION = 2  # 1 had no signature and no total: such files are ignored


def signature(action_config: Mapping[str, object], code_version: str) -> str:
    """A short digest of the action's config (as sent to the runner) and the handler code
    version: when either changes, earlier timings say nothing about this run."""
    text = json.dumps([action_config, code_version], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class History:
    """Timings per (project, action) under a signature, least recently recorded dropped past a
    bound."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, str], tuple[str, Timing]] = {}
        self.changed = False  # recorded since loaded: `save` writes only then

    def __len__(self) -> int:
        return len(self._entries)

    def timing(self, project: str, action: str, signed: str) -> Timing | None:
        """The timing recorded under the same signature, else None."""
        entry = self._entries.get((project, action))
        return entry[1] if entry is not None and entry[0] == signed else None

    def recorded(self) -> dict[tuple[str, str], float]:
        """The seconds last recorded per (project, action), whatever their signature: what a
        run is likely to take again (`--shard` balances by it)."""
        return {key: timing.seconds for key, (_signed, timing) in self._entries.items()}

    def record(self, project: str, action: str, signed: str, seconds: float,
               total: float | None = None) -> None:
        """A run (ok or failed) of `action` in `project` took `seconds` of running time and
        declared `total` units (None: none). Smoothed with the entry of the same signature,
        scaled to this total; an entry of another signature is replaced."""
        took = non_negative(seconds)
        if took is None:
            return
        units = non_negative(total)
        key = (project, action)
        old = self._entries.pop(key, None)
        before = old[1].for_total(units) if old is not None and old[0] == signed else None
        if before is not None:
            took = SMOOTHING * took + (1 - SMOOTHING) * before
        self._entries[key] = (signed, Timing(took, units))
        self.changed = True
        while len(self._entries) > self.limit:
            del self._entries[next(iter(self._entries))]

    def to_json(self) -> dict[str, object]:
        return {"version": VERSION,
                "entries": [[p, a, signed, round(t.seconds, 4), t.total]
                            for (p, a), (signed, t) in self._entries.items()]}

    @classmethod
    def from_json(cls, data: object, limit: int = MAX_ENTRIES) -> History:
        """Entries that are not `[project, action, signature, seconds, total|null]` are
        skipped; another version or a wrong shape is empty."""
        history = cls(limit)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return history
        entries = data.get("entries")
        for entry in entries if isinstance(entries, list) else []:
            if (isinstance(entry, list) and len(entry) == 5
                    and all(isinstance(part, str) for part in entry[:3])
                    and (entry[4] is None or non_negative(entry[4]) is not None)):
                history.record(entry[0], entry[1], entry[2], entry[3], entry[4])
        history.changed = False
        return history


class ChildTimes:
    """History as one batch sees it: each child's timing from earlier runs of the same work,
    and the child's own run recorded when it ends."""

    def __init__(self, history: History | None,
                 children: list[tuple[str, str, str | None]]) -> None:
        """`children`: (project, action, signature) each; the signature is None when it cannot
        be read (that child has no history)."""
        self._history = history
        self._children = list(children)

    def timings(self) -> list[Timing | None]:
        history = self._history
        return [history.timing(project, action, signed)
                if history is not None and signed is not None else None
                for project, action, signed in self._children]

    def sent(self, index: int, signed: str) -> None:
        """What the child's run is, as it was sent (its config and code may have changed)."""
        project, action, _ = self._children[index]
        self._children[index] = (project, action, signed)

    def ran(self, index: int, seconds: float, total: float | None) -> None:
        """The child's run (ok or failed) took `seconds` of running time and declared `total`
        units. A failed run's time is real work too (the next one will likely fail the same
        way); a cancelled run says nothing about how long the work takes: it is not told."""
        project, action, signed = self._children[index]
        if self._history is not None and signed is not None:
            self._history.record(project, action, signed, seconds, total)


def default_path() -> Path:
    """`$XDG_CACHE_HOME/finecode/history.json`, else `~/.cache/finecode/history.json`."""
    return cache_dir() / "history.json"


def load(path: Path) -> History:
    """The history kept at `path`; an unreadable or corrupt file counts as none."""
    try:  # regular files only: a FIFO in its place would block the run before it starts
        return History.from_json(json.loads(read_regular(path, MAX_BYTES).decode("utf-8")))
    except (OSError, ValueError):
        return History()


def save(history: History, path: Path) -> None:
    """Write atomically (a temporary file renamed over the old one); failures are ignored.

    Two runs saving at once: the last one wins, which only loses some timings. Nothing
    recorded since it was loaded (a run whose every child was cached): nothing written.
    """
    if not history.changed:
        return
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
