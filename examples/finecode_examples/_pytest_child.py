"""pytest in a child process with the events plugin, its events read from a pipe of their own.

The child runs with the interpreter running this code (the project's environment), from the
project root, in a process group of its own (`_subprocess.started`: cancelling kills the group).
The plugin is loaded from a directory that holds only it, put on the child's `PYTHONPATH`, so the
environment needs pytest and nothing of FineCode. pytest's terminal output goes to a temporary
file, kept only to explain a pytest that did not run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from finecode_examples._subprocess import started

__all__ = ["run_pytest"]

PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"
PLUGIN = "finecode_pytest_events"
EVENTS_ENV = "FINECODE_PYTEST_EVENTS_FD"
EVENT_LINE_LIMIT = 64 * 1024 * 1024  # the `collected` event lists every test id on one line
READ_CHUNK = 256 * 1024
READS_PER_WAKE = 64
COALESCE = 0.02  # seconds between reads of the event pipe: one wake-up per batch of events
DRAIN_GRACE = 0.5  # after pytest exits, how long a process it left may keep the pipe open
OUTPUT_TAIL_BYTES = 8000


async def run_pytest(root: Path, args: Sequence[str],
                     on_events: Callable[[list[Any]], Awaitable[None]],
                     extra_env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run pytest with the events plugin; call `on_events` with each batch of events as they
    arrive (a line that is not JSON is passed as None).

    Returns pytest's exit code and the end of its terminal output. Cancelling kills pytest and
    everything it started (its process group) before this returns.
    """
    read_fd, write_fd = os.pipe()
    env = {**os.environ, **(extra_env or {})}
    env[EVENTS_ENV] = str(write_fd)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "pytest", "-p", PLUGIN, *args]
    with tempfile.TemporaryFile() as output:
        try:
            async with started(command, cwd=root, env=env, stdout=output,
                               stderr=asyncio.subprocess.STDOUT, pass_fds=(write_fd,)) as proc:
                os.close(write_fd)
                write_fd = -1
                await _stream_events(read_fd, proc, on_events)
                returncode = await proc.wait()
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        return returncode, _read_tail(output)


async def _stream_events(fd: int, proc: asyncio.subprocess.Process,
                         on_events: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Read newline-delimited JSON events from `fd` until the pipe closes.

    Events are taken in batches: once the pipe has data the handler waits `COALESCE` seconds
    and reads everything there, so a suite of fast tests wakes it a few dozen times a second
    rather than once per test (the reports it sends are paced at 0.1 s anyway). The pipe closes
    when pytest exits, unless a process it started kept a copy: once pytest has exited, such a
    straggler gets `DRAIN_GRACE` seconds, then reading stops here.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    stop = False

    def give_up() -> None:
        nonlocal stop
        stop = True
        readable.set()

    exited = loop.create_task(proc.wait())
    exited.add_done_callback(lambda _: loop.call_later(DRAIN_GRACE, give_up))
    lines = _Lines(EVENT_LINE_LIMIT)
    try:
        while True:
            loop.add_reader(fd, readable.set)
            try:
                await readable.wait()
            finally:
                loop.remove_reader(fd)
            readable.clear()
            await asyncio.sleep(COALESCE)
            data, eof = _available(fd)
            await on_events([_parse(line) for line in lines.feed(data)])
            if eof or stop:
                return
    finally:
        if not exited.done():
            exited.cancel()


def _parse(line: bytes) -> Any:
    """One event, or None for a line that is not JSON (or nests deeper than Python can)."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _available(fd: int) -> tuple[bytes, bool]:
    """What the pipe holds now (bounded, so a flood cannot hold the loop), and whether it
    ended."""
    chunks: list[bytes] = []
    for _ in range(READS_PER_WAKE):
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            break
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


class _Lines:
    """Splits a byte stream into lines; a line longer than `limit` is dropped whole (the
    events after it still count)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending = bytearray()
        self._overlong = False

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        *lines, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        if self._overlong and lines:
            lines.pop(0)  # the end of the line that was dropped
            self._overlong = False
        if len(self._pending) > self._limit:
            self._pending.clear()
            self._overlong = True
        return [bytes(line) for line in lines if len(line) <= self._limit]


def _read_tail(output: IO[bytes]) -> str:
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(size - OUTPUT_TAIL_BYTES, 0))
    return output.read().decode(errors="replace")
