"""Reading files that come from a repository: regular files only, bounded, never blocking.

A `pyproject.toml` may be a FIFO (opening it would wait for a writer forever), a symlink to
`/dev/zero` (reading never ends) or `/dev/stdin` (the WM would read its own protocol pipe).
Every read of repository content goes through here: the file is opened without blocking, must be
a regular file once opened (symlinks are followed, then checked), and is read up to a limit.
Standard library only: the runner uses it too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAX_CONFIG_BYTES", "NotReadable", "read_regular", "stream_regular"]

# A pyproject.toml larger than this is not a config. Parsing costs memory: tomllib needs up to
# ~200 MB for 1 MiB of hostile TOML (many keys of many dotted parts), ~800 MB for 4 MiB.
MAX_CONFIG_BYTES = 1024 * 1024
CHUNK = 1 << 20
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


class NotReadable(OSError):
    """The path cannot be read as repository content; the message says why, for a person.

    `reason` is the why without the path (`not a regular file (a FIFO)`), for messages that
    name the path themselves.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _open(path: Path) -> int:
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise _unreadable(path, exc) from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        reason = f"not a regular file ({_kind(mode)})"
        raise NotReadable(f"{path} is {reason}; it is not read", reason)
    return fd


def _unreadable(path: Path, exc: OSError) -> NotReadable:
    reason = f"cannot read: {exc.strerror or exc}"
    error = NotReadable(f"cannot read {path}: {exc.strerror or exc}", reason)
    error.errno = exc.errno  # an absent file stays tellable from a broken one
    return error


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: Path, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit` bytes, else `NotReadable`."""
    fd = _open(path)
    try:
        with os.fdopen(fd, "rb", closefd=True) as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if len(data) > limit:
        reason = f"larger than {limit // 1024} KiB"
        raise NotReadable(f"{path} is {reason}; it is not read", reason)
    return data


def stream_regular(path: Path, consume: Callable[[bytes], object]) -> int:
    """Feed every byte of regular file `path` to `consume` in chunks (no size limit, for
    hashing); returns the number of bytes. `NotReadable` if it is not a regular file."""
    fd = _open(path)
    size = 0
    try:
        with os.fdopen(fd, "rb", closefd=True) as file:
            while chunk := file.read(CHUNK):
                consume(chunk)
                size += len(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return size
