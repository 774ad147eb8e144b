"""Child processes of the example handlers: started in their own process group, never left
behind.

A tool the handler starts (ruff, pytest, uv) may start processes of its own: pytest runs the
project's tests, which may spawn anything. Killing only the direct child on cancel would leave
those running and holding pipes, so each child leads a new process group and the whole group is
killed when the handler stops waiting for it — cancelled, failed or done early. The child is
always reaped before the handler goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["kill_group", "run", "started", "tail"]

TAIL_CHARS = 2000


@contextlib.asynccontextmanager
async def started(command: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
                  stdout: int | IO[Any] | None = asyncio.subprocess.PIPE,
                  stderr: int | IO[Any] | None = asyncio.subprocess.PIPE,
                  pass_fds: Sequence[int] = ()) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start `command` as the leader of a new process group; on leaving, kill the leader if it
    still runs, reap it, and kill whatever else is left in its group."""
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
        pass_fds=tuple(pass_fds), start_new_session=True)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            kill_group(proc.pid)
        # Shielded: a second cancel while reaping must not leave a zombie behind.
        await asyncio.shield(proc.wait())
        # What the child left running in its group (a test's forked helper, say). Safe once
        # the leader is reaped: a group id is not reused while any member is alive.
        kill_group(proc.pid)


def kill_group(pid: int) -> None:
    """SIGKILL the process group that `pid` leads (`started` makes every child a leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run(command: Sequence[str], *, cwd: Path,
              env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run `command` to the end: its exit code, stdout and stderr (decoded leniently)."""
    async with started(command, cwd=cwd, env=env) as proc:
        stdout, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


def tail(text: str) -> str:
    """The end of a possibly long output, where a tool's actual error usually is."""
    text = text.strip()
    return text if len(text) <= TAIL_CHARS else "..." + text[-TAIL_CHARS:]
