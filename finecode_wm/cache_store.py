"""Where cached results live: one JSON file per entry on disk, the recent ones in memory too.

Safe with concurrent writers (CLI runs in parallel, an editor's server beside them): an entry
is written to a temporary file in the same directory and renamed over its name, so a reader
sees a whole entry or none, and two writers of one key leave one of their (equal) entries.
A crash mid-write leaves only a temporary file, which no reader opens and a later prune
removes. An entry that does not parse or has the wrong shape (a truncated file, another
format) counts as absent and is deleted.

Size-capped: past `max_bytes` in all, the least recently used files go first (use = written or
read: a hit touches the file's mtime, as atime is often not kept), down to `PRUNE_TO` of the
cap. Every call here blocks: the cache runs them on its own worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from finecode_er.safefile import read_regular

__all__ = ["FORMAT", "MAX_BYTES", "ResultStore", "max_bytes_from_env"]

FORMAT = 1  # entries of another format are ignored (and deleted)
MAX_BYTES = 512 * 1024 * 1024
PRUNE_TO = 0.8  # a prune frees down to this fraction of the cap
MEMORY_ENTRIES = 2048  # entries a long-lived server keeps in memory
TOUCH_EVERY = 60.0  # seconds between two marks of the same entry as used (its mtime)
MAX_ENTRY_BYTES = 64 * 1024 * 1024  # as a runner's message: a larger file is not ours
STALE_TEMP = 3600.0  # seconds after which a temporary file is a crashed writer's
TEMP_PREFIX = ".tmp-"
ENV_MAX_MB = "FINECODE_CACHE_MAX_MB"


def max_bytes_from_env(env: dict[str, str] | None = None) -> int:
    """`$FINECODE_CACHE_MAX_MB` as bytes (a positive whole number), else `MAX_BYTES`."""
    raw = (os.environ if env is None else env).get(ENV_MAX_MB, "")
    try:
        megabytes = int(raw)
    except ValueError:
        return MAX_BYTES
    return megabytes * 1024 * 1024 if megabytes > 0 else MAX_BYTES


class ResultStore:
    """Entries by key (a hex digest): `get`, `put`, and the size cap."""

    def __init__(self, directory: Path, max_bytes: int = MAX_BYTES,
                 memory_entries: int = MEMORY_ENTRIES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._touched: dict[str, float] = {}  # key -> when this process last marked it used
        self._memory_entries = memory_entries
        self._total: int | None = None  # bytes on disk, counted at the first write

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under `key`, or None (absent, unreadable or corrupt)."""
        entry = self._memory.get(key)
        if entry is not None:
            self._memory.move_to_end(key)
            self._touch(key)
            return entry
        path = self.path(key)
        try:  # a FIFO under an entry's name (a restored CI cache, say) would block an open
            raw = read_regular(path, MAX_ENTRY_BYTES)
        except OSError as exc:  # not a regular file, too large, unreadable: not ours
            if exc.errno != errno.ENOENT:
                self._discard(path)
            return None
        try:
            entry = json.loads(raw)
        except (ValueError, RecursionError):
            entry = None
        if not (isinstance(entry, dict) and entry.get("format") == FORMAT
                and entry.get("key") == key and isinstance(entry.get("validity"), dict)
                and "result" in entry):
            self._discard(path)
            return None
        self._remember(key, entry)
        self._touch(key)
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> bool:
        """Store `entry` (`format` and `key` are set here); False when it is not strict JSON or
        too large (nothing is stored then). A directory that cannot be written raises `OSError`
        (nothing is stored either, no temporary file is left): the caller says so once."""
        entry = {**entry, "format": FORMAT, "key": key}
        try:
            text = json.dumps(entry, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            return False
        data = text.encode()
        if len(data) > MAX_ENTRY_BYTES:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, self.path(key))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._remember(key, entry)
        if self._total is None:
            self._total = self._count()
        else:
            self._total += len(data)
        if self._total > self.max_bytes:
            self.prune()
        return True

    def prune(self) -> None:
        """Delete the least recently used files until the store is within `PRUNE_TO` of the cap,
        and temporary files of writers that crashed."""
        files = []
        now = time.time()
        try:
            with os.scandir(self.directory) as listing:
                for item in listing:
                    with contextlib.suppress(OSError):
                        st = item.stat(follow_symlinks=False)
                        if item.name.startswith(TEMP_PREFIX):
                            if now - st.st_mtime > STALE_TEMP:
                                self._discard(Path(item.path))
                        elif item.is_file(follow_symlinks=False):
                            files.append((st.st_mtime_ns, item.name, st.st_size))
        except OSError:
            return
        total = sum(size for _m, _n, size in files)
        for _mtime, name, size in sorted(files):
            if total <= self.max_bytes * PRUNE_TO:
                break
            self._discard(self.directory / name)
            self._memory.pop(name.removesuffix(".json"), None)
            total -= size
        self._total = total

    def _count(self) -> int:
        total = 0
        with contextlib.suppress(OSError), os.scandir(self.directory) as listing:
            for item in listing:
                with contextlib.suppress(OSError):
                    total += item.stat(follow_symlinks=False).st_size
        return total

    def _remember(self, key: str, entry: dict[str, Any]) -> None:
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)

    def _touch(self, key: str) -> None:
        """Mark the entry used (its mtime), for the LRU order; a file pruned meanwhile by
        another process is forgotten. Once per `TOUCH_EVERY` per entry: a long-lived server
        reuses the same entries run after run, and the order needs no finer grain."""
        now = time.monotonic()
        if now - self._touched.get(key, -TOUCH_EVERY) < TOUCH_EVERY:
            return
        if len(self._touched) > 4 * MEMORY_ENTRIES:
            self._touched.clear()
        try:
            os.utime(self.path(key))
            self._touched[key] = now
        except FileNotFoundError:
            self._memory.pop(key, None)
        except OSError:
            pass

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
