"""One runner process (`python -m finecode_er`): spawn, initialize, requests, stderr, stop, kill.

Each runner's `$/progress` goes straight from the pipe to a callback (the pool's router: no
generic dispatch, no task per message). stderr is drained into the log so a chatty handler can
never block on a full pipe; its last lines are kept for the error when a runner dies. A runner
whose connection ends while it still runs (it broke the framing, or closed its stdout) is
killed: it is never left alive beside its replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import finecode_er
from finecode_er.wire import Connection, ConnectionClosed

from ..paths import cache_dir
from ..workspace import Environment
from .lifecycle import RunnerState

__all__ = ["CANCEL_GRACE", "STOP_TIMEOUT", "LineCutter", "RunnerDied", "RunnerProcess",
           "runner_path"]

Log = Callable[[str], None]
RequestHandler = Callable[["RunnerProcess", str, Any], Awaitable[Any]]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 2.0
STDERR_TAIL = 20
CANCEL_GRACE = 2.0  # a handler that ignores a cancel this long gets its runner killed
STDERR_LINES_PER_SECOND = 200  # forwarded to the editor's log; the rest are counted
STDERR_LINE = 2000  # bytes of one stderr line kept for the log (the tail keeps 500 characters)
STDERR_CHUNK = 65536
CLOSED_WAIT = 0.5  # a runner that closed its stdout gets this long to exit before it is killed
_LINE_ENDS = re.compile(rb"[\r\n]")
# `python = "python3"` is a path relative to the project root, not a command: say so.
NO_INTERPRETER = ("; [tool.finecode] python is a path (a relative one is taken from the project "
                  "root, a bare name such as python3 is not looked up on PATH): write it as "
                  "an absolute path or e.g. .venv/bin/python")


def runner_path() -> str:
    """A directory holding only `finecode_er` (a link), for a project interpreter's PYTHONPATH.

    Adding the WM's own site-packages instead would shadow the project's packages.
    """
    package = Path(finecode_er.__file__).resolve().parent
    digest = hashlib.sha1(str(package).encode()).hexdigest()[:12]
    base = cache_dir() / f"runner-{finecode_er.__version__}-{digest}"
    link = base / "finecode_er"
    if not link.exists():
        base.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            link.symlink_to(package, target_is_directory=True)
    return str(base)


class LineCutter:
    """Splits a byte stream into lines for the log, whatever arrives: `\r` ends a line as `\n`
    does (a progress bar redrawn in place), and a line longer than `limit` bytes is given as
    soon as it reaches the limit, cut, the rest of it dropped: nothing is buffered beyond
    `limit` bytes, and a line that never ends is still seen."""

    def __init__(self, limit: int = STDERR_LINE) -> None:
        self._limit = limit
        self._part = bytearray()
        self._cutting = False  # the current line was given cut: drop the rest of it

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that `chunk` completes or cuts (empty lines left out)."""
        *ended, rest = _LINE_ENDS.split(chunk)
        lines = []
        for piece in ended:
            lines += self._add(piece)
            lines += self._take()
            self._cutting = False
        return lines + self._add(rest)

    def end(self) -> list[str]:
        """The unfinished last line, at end of stream."""
        return self._take()

    def _add(self, piece: bytes) -> list[str]:
        if self._cutting:
            return []
        room = self._limit - len(self._part)
        self._part += piece[:room]
        if len(piece) <= room:
            return []
        self._cutting = True
        return self._take(cut=True)

    def _take(self, *, cut: bool = False) -> list[str]:
        text = self._part.decode(errors="replace").rstrip()
        self._part.clear()
        if cut:
            text += f" … (line cut at {self._limit} bytes)"
        return [text] if text else []


class RunnerDied(Exception):
    """A runner could not start, or exited while a request was in flight."""


class RunnerProcess:
    """One `python -m finecode_er` child serving the projects of one environment.

    Its state changes only through `self.state` (see `lifecycle`); the pool decides, this class
    does the I/O. The child is killed whatever happens to the task stopping it.
    """

    def __init__(self, environment: Environment, on_progress: Callable[[Any], None], log: Log, *,
                 on_request: RequestHandler | None = None, folders: tuple[Path, ...] = (),
                 on_change: Callable[[RunnerProcess], None] | None = None) -> None:
        self.environment = environment
        self.state = RunnerState()
        self._on_progress = on_progress  # every `$/progress` params, straight from the pipe
        self._log = log
        self._on_request = on_request
        self._on_change = on_change or (lambda _r: None)
        self.proc: asyncio.subprocess.Process | None = None
        self.conn: Connection | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: set[asyncio.Task[None]] = set()
        self._starting: asyncio.Task[None] | None = None  # `start()`, shared by every lease
        self.folders = folders  # loaded from source only (workspace trust)
        self._settled = asyncio.Event()  # every cancelled request was answered
        self._settled.set()

    @property
    def name(self) -> str:
        return self.environment.label

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not (
            self.conn is not None and self.conn.closed)

    def _env(self) -> dict[str, str]:
        """Make this distribution's runner importable for a project's own interpreter."""
        env = dict(os.environ)
        if self.environment.python != sys.executable:
            here = runner_path()
            env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        return env

    async def start(self) -> None:
        """Spawn and `initialize`; on any failure (or cancel) the process is gone."""
        python = self.environment.python
        cwd = self.environment.isolated  # a shared runner's cwd is no project's
        try:
            # -P: the working directory is not put on sys.path (it is no project's)
            self.proc = await asyncio.create_subprocess_exec(
                python, "-P", "-m", "finecode_er", cwd=cwd, env=self._env(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=2**24)
        except OSError as exc:
            self._ended()
            hint = NO_INTERPRETER if isinstance(exc, FileNotFoundError) else ""
            raise RunnerDied(f"cannot start a runner with {python}: "
                             f"{exc.strerror or exc}{hint}") from None
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.conn = Connection(self.proc.stdout, self.proc.stdin, log=self._log,
                               on_notification=self._notified,
                               on_request=self._requested if self._on_request else None,
                               on_cancel_sent=self._cancel_sent,
                               on_cancel_answered=self._cancel_answered)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._serve()), loop.create_task(self._drain()),
                       loop.create_task(self._watch_exit())]
        params: dict[str, Any] = {"clientName": "finecode_wm",
                                  "workspaceFolders": [str(f) for f in self.folders]}
        if self.environment.isolated is not None:  # the runner's own project, as before sharing
            params.update(projectRoot=str(self.environment.isolated), actions={})
        try:
            await asyncio.wait_for(self.conn.request("initialize", params), START_TIMEOUT)
        except TimeoutError:
            failure = RunnerDied(f"runner ({self.name}) did not start within "
                                 f"{START_TIMEOUT:.0f} s{self._tail()}")
        except ConnectionClosed:
            code = await self._exit_code()
            failure = RunnerDied(f"runner ({self.name}) exited while starting (code {code})"
                                 f"{self._why()}")
        except BaseException:
            await self.kill()
            raise
        else:
            if self.state.state == "starting":
                self.state.started()
                self._on_change(self)
            return
        await self.kill()
        raise failure

    def start_soon(self) -> asyncio.Task[None]:
        """`start()` in its own task, which every lease of this runner waits for."""
        self._starting = asyncio.get_running_loop().create_task(self.start())
        return self._starting

    async def started(self) -> None:
        """Wait until the runner has started (raises what made its start fail).

        Shielded: the start is shared by every lease waiting on it, so a waiter that is
        cancelled stops waiting without cancelling the start for the others.
        """
        if self._starting is not None:
            await asyncio.shield(self._starting)

    def cancel_start(self) -> None:
        """Stop a start that is still under way (the WM is shutting down)."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()

    def _ended(self) -> None:
        if self.state.live:
            self.state.stopped()
            self._on_change(self)

    async def _watch_exit(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self._ended()

    async def _serve(self) -> None:
        """Read the runner's messages until its connection ends. A runner still running then is
        of no use (it broke the framing, or closed its stdout): it is killed with the reason,
        which its requests in flight fail with."""
        assert self.conn is not None and self.proc is not None
        await self.conn.serve()
        if self.conn.violation is None and self.state.stopping:
            return  # the stop waits for the exit, and kills if it does not come
        if self.conn.violation is None:
            with contextlib.suppress(TimeoutError):  # the usual end: the process is exiting
                await asyncio.wait_for(self.proc.wait(), CLOSED_WAIT)
        if self.proc.returncode is None:
            why = self.conn.violation or "it closed its stdout while still running"
            self._killing(f"{why}; the runner was killed and is replaced on next use")
            await self.kill()

    def _notified(self, method: str, params: Any) -> None:
        if method == "$/progress":
            self._on_progress(params)

    async def _requested(self, method: str, params: Any) -> Any:
        assert self._on_request is not None
        return await self._on_request(self, method, params)

    async def _drain(self) -> None:
        """Keep the pipe empty, in chunks (a line may never end); forward at most a bounded
        number of lines a second, each cut to `STDERR_LINE` bytes."""
        assert self.proc is not None and self.proc.stderr is not None
        loop = asyncio.get_running_loop()
        name = os.path.basename(self.environment.python)
        lines = LineCutter()
        window, sent, skipped = loop.time(), 0, 0
        while True:
            chunk = await self.proc.stderr.read(STDERR_CHUNK)
            for text in lines.feed(chunk) if chunk else lines.end():
                self.stderr_tail.append(text[:500])
                now = loop.time()
                if now - window >= 1.0:
                    if skipped:
                        self._log(f"[runner {self.pid} {name}] ({skipped} stderr lines not "
                                  "forwarded)")
                    window, sent, skipped = now, 0, 0
                if sent < STDERR_LINES_PER_SECOND:
                    sent += 1
                    self._log(f"[runner {self.pid} {name}] {text}")
                else:
                    skipped += 1
            if not chunk:
                return

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _tail(self) -> str:
        return (":\n" + "\n".join(self.stderr_tail)) if self.stderr_tail else ""

    def _why(self) -> str:
        """Why the runner is gone: the WM's own reason when it killed it, else its last words."""
        killed = self.state.killed_because
        return f": {killed}" if killed else self._tail()

    async def request(self, method: str, params: Any) -> Any:
        """A request to the runner; a runner that dies meanwhile raises `RunnerDied`.

        Cancelling the wait sends `$/cancelRequest`; until the runner answers, it is draining
        (no new work), and if it has not answered after the grace period it is killed.
        """
        if self.conn is None:
            raise RunnerDied("runner not started")
        try:
            return await self.conn.request(method, params)
        except ConnectionClosed:
            code = await self._exit_code()
            raise RunnerDied(f"runner ({self.name}) exited (code {code}){self._why()}") from None

    def notify(self, method: str, params: Any = None) -> None:
        """A notification to the runner (dropped once its connection is gone)."""
        if self.conn is not None:
            self.conn.notify(method, params)

    def _cancel_sent(self, msg_id: int) -> None:
        if self.state.stopping:
            return  # our own `shutdown` timed out: the stop kills the process anyway
        self.state.cancel_sent()
        self._settled.clear()
        self._on_change(self)
        watcher = asyncio.get_running_loop().create_task(self._watch_cancel(msg_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def _cancel_answered(self, _msg_id: int) -> None:
        self.state.cancel_answered()
        if self.conn is not None and not self.conn.is_cancelling():
            self._settled.set()
        self._on_change(self)

    async def _watch_cancel(self, msg_id: int) -> None:
        """Kill the runner if a cancelled request is still unanswered after the grace period."""
        await asyncio.sleep(CANCEL_GRACE)
        conn = self.conn
        if conn is not None and self.alive and conn.is_cancelling(msg_id):
            self._killing(f"a handler ignored cancellation for {CANCEL_GRACE:g} s; the runner "
                          "was killed and is replaced on next use")
            await self.kill()

    def _killing(self, reason: str) -> None:
        self.state.killed(reason)
        self._log(f"[runner {self.pid}] {reason}")

    async def _exit_code(self) -> int | None:
        assert self.proc is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 1.0)
            # let the drain read the last stderr lines
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 0.5)
        return self.proc.returncode

    async def stop(self) -> None:
        """`shutdown` + `exit`, then close stdin; killed if it does not go within the timeout.

        Handlers that were just cancelled first get the cancel grace to finish their clean-up
        (their `finally`): `exit` would end them where they are. The kill is in `finally`:
        cancelling the task that stops a runner never leaves the process behind.
        """
        self.state.stop_begun()
        try:
            proc = self.proc
            if self.alive and not self._settled.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), CANCEL_GRACE)
            if proc is not None and proc.returncode is None and self.conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.conn.request("shutdown", None), STOP_TIMEOUT)
                    self.notify("exit")
                if proc.stdin is not None:
                    proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        finally:
            await self.kill()

    def stop_soon(self) -> asyncio.Task[None]:
        """`stop()` in its own task; the process is killed even if that task is cancelled
        before it ever ran (a done-callback runs whatever happens)."""
        self.state.stop_begun()
        task = asyncio.get_running_loop().create_task(self.stop())
        task.add_done_callback(lambda _t: self.terminate())
        return task

    def terminate(self) -> None:
        """Synchronously: close stdin and SIGKILL the process if it still runs."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def kill(self) -> None:
        """Make sure the process is gone and its pipes are closed."""
        self.terminate()
        self._ended()
        try:
            if self.proc is not None:
                await self.proc.wait()
        finally:
            others = [t for t in self._tasks if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
