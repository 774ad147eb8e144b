"""Extension Runner processes: owned per environment, started on demand, replaced when they die.

Projects on the same interpreter share their environment's runners (a project with
`isolated = true` is an environment of its own). `RunnerPool` keeps only the runners' lifecycle
(`lifecycle.RunnerState`): which runner takes the next execution, starting one when every ready
runner is busy (up to `per_environment`), evicting idle ones over the `max_runners` cap, stopping
them in the background — never while holding a decision across an await.

Each runner's `$/progress` goes straight from the pipe to the `ProgressRouter` (no generic
dispatch, no task per message), which hands it to whoever minted the token. stderr is drained
into the log so a chatty handler can never block on a full pipe; its last lines are kept for
the error when a runner dies. A runner whose connection ends while it still runs (it broke the
framing, or closed its stdout) is killed: it is never left alive beside its replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import re
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import finecode_er
from finecode_er.wire import Connection, ConnectionClosed

from .lifecycle import RunnerState
from .paths import cache_dir
from .workspace import Environment

__all__ = ["ProgressRouter", "RunnerDied", "RunnerPool", "RunnerProcess"]

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
RETIRED_TOKENS = 1024
MIN_RUNNERS = 4  # default cap on live runners of all environments: max(this, per_environment)
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


class ProgressRouter:
    """Maps the WM's internal child tokens to the code that folds their progress."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._routes: dict[str, Callable[[Any], None]] = {}
        self._owners: dict[str, Any] = {}
        # Released tokens: a cancelled child's runner may still send its last values there.
        self._retired: dict[str, None] = {}
        self._ids = itertools.count(1)
        self.dropped = 0

    def mint(self, deliver: Callable[[Any], None], owner: Any = None) -> str:
        """A fresh child token; `owner` is the execution it names (for runner requests)."""
        token = f"fc-{next(self._ids)}"
        self._routes[token] = deliver
        if owner is not None:
            self._owners[token] = owner
        return token

    def owner(self, token: Any) -> Any:
        return self._owners.get(token) if isinstance(token, str) else None

    def release(self, token: str) -> None:
        self._owners.pop(token, None)
        if self._routes.pop(token, None) is not None:
            self._retired[token] = None
            if len(self._retired) > RETIRED_TOKENS:
                del self._retired[next(iter(self._retired))]

    def deliver(self, params: Any) -> None:
        token = params.get("token") if isinstance(params, dict) else None
        route = self._routes.get(token) if isinstance(token, str) else None
        if route is None:
            if token in self._retired:
                return
            self.dropped += 1
            if self.dropped <= 10 or self.dropped % 10_000 == 0:
                self._log(f"dropped $/progress for an unknown token ({self.dropped} so far): "
                          f"{str(params)[:120]}")
            return
        route(params.get("value"))


class RunnerProcess:
    """One `python -m finecode_er` child serving the projects of one environment.

    Its state changes only through `self.state` (see `lifecycle`); the pool decides, this class
    does the I/O. The child is killed whatever happens to the task stopping it.
    """

    def __init__(self, environment: Environment, router: ProgressRouter, log: Log, *,
                 on_request: RequestHandler | None = None,
                 on_change: Callable[[RunnerProcess], None] | None = None) -> None:
        self.environment = environment
        self.state = RunnerState()
        self._router = router
        self._log = log
        self._on_request = on_request
        self._on_change = on_change or (lambda _r: None)
        self.proc: asyncio.subprocess.Process | None = None
        self.conn: Connection | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._tasks: list[asyncio.Task[None]] = []
        self.killed_because: str | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self.starting: asyncio.Task[None] | None = None
        self.folders: tuple[Path, ...] = ()  # loaded from source only (workspace trust)
        self.stopping = False  # a stop is under way: no second one, no cancel bookkeeping
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
        if self.conn.violation is None and self.stopping:
            return  # the stop waits for the exit, and kills if it does not come
        if self.conn.violation is None:
            with contextlib.suppress(TimeoutError):  # the usual end: the process is exiting
                await asyncio.wait_for(self.proc.wait(), CLOSED_WAIT)
        if self.proc.returncode is None:
            why = self.conn.violation or "it closed its stdout while still running"
            self.killed_because = f"{why}; the runner was killed and is replaced on next use"
            self._log(f"[runner {self.pid}] {self.killed_because}")
            await self.kill()

    def _notified(self, method: str, params: Any) -> None:
        if method == "$/progress":
            self._router.deliver(params)

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
        return f": {self.killed_because}" if self.killed_because else self._tail()

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

    def _cancel_sent(self, msg_id: int) -> None:
        if self.stopping:
            return  # our own `shutdown` timed out: the stop kills the process anyway
        self.state.cancel_sent()
        self._settled.clear()
        self._on_change(self)
        watcher = asyncio.get_running_loop().create_task(self._watch_cancel(msg_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def _cancel_answered(self, _msg_id: int) -> None:
        self.state.cancel_answered()
        if self.conn is not None and not self.conn.cancelling:
            self._settled.set()
        self._on_change(self)

    async def _watch_cancel(self, msg_id: int) -> None:
        """Kill the runner if a cancelled request is still unanswered after the grace period."""
        await asyncio.sleep(CANCEL_GRACE)
        conn = self.conn
        if conn is not None and self.alive and msg_id in conn.cancelling:
            self.killed_because = (f"a handler ignored cancellation for {CANCEL_GRACE:g} s; "
                                   "the runner was killed and is replaced on next use")
            self._log(f"[runner {self.pid}] {self.killed_because}")
            await self.kill()

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
        self.stopping = True
        try:
            proc = self.proc
            if self.alive and not self._settled.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), CANCEL_GRACE)
            if proc is not None and proc.returncode is None and self.conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.conn.request("shutdown", None), STOP_TIMEOUT)
                    self.conn.notify("exit")
                if proc.stdin is not None:
                    proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        finally:
            await self.kill()

    def stop_soon(self) -> asyncio.Task[None]:
        """`stop()` in its own task; the process is killed even if that task is cancelled
        before it ever ran (a done-callback runs whatever happens)."""
        self.stopping = True
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


class RunnerPool:
    """The runners of every environment of a workspace: started when needed, shared, bounded.

    - `per_environment` runners at most per environment (default: `maxParallel`): one runner
      serves many executions at once (each in its own task), so extra runners only buy
      parallelism for CPU-bound handlers; the next execution goes to the least loaded ready
      runner, and a new runner starts only when every ready one is busy. A delegated child never
      runs in a runner of one of its ancestors (so its crash cannot take them down): an
      environment may hold, besides `per_environment`, the runners a delegation chain needs.
    - `max_runners` live processes in all (default max(4, per_environment)): over it, the least
      recently used idle runners are stopped. Nothing idle means the cap is exceeded for a
      moment rather than a request being made to wait (which could deadlock a delegating parent).
    """

    def __init__(self, log: Log, *, per_environment: int | None = None,
                 max_runners: int | None = None) -> None:
        self._log = log
        self.router = ProgressRouter(log)
        self._envs: dict[Environment, list[RunnerProcess]] = {}
        self._owned: set[RunnerProcess] = set()  # every process not yet known to be gone
        self._stopping: set[asyncio.Task[None]] = set()
        self.per_environment = per_environment or os.cpu_count() or 2
        self._max_runners = max_runners
        self.on_request: RequestHandler | None = None  # requests from runners (delegation)
        self.folders: tuple[Path, ...] = ()  # the workspace folders, told to every new runner
        self.closed = False  # after stop_all: no runner starts again

    @property
    def max_runners(self) -> int:
        return self._max_runners or max(MIN_RUNNERS, self.per_environment)

    def set_limits(self, *, per_environment: int | None = None,
                   max_runners: int | None = None) -> None:
        if per_environment:
            self.per_environment = per_environment
        if max_runners:
            self._max_runners = max_runners

    # -- leasing ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, environment: Environment, *,
                    avoid: Collection[RunnerProcess] = ()) -> AsyncIterator[RunnerProcess]:
        """A ready runner of `environment` for one execution; never stopped while leased.

        Never one of `avoid` (the runners of a delegated child's ancestors): when every runner
        of the environment is avoided, one more starts, over `per_environment`.
        """
        runner = await self._acquire(environment, avoid)
        try:
            yield runner
        finally:
            self._release(runner)

    async def _acquire(self, environment: Environment,
                       avoid: Collection[RunnerProcess]) -> RunnerProcess:
        while True:
            runner = self._choose(environment, avoid)  # decided and leased with no await between
            try:
                if runner.starting is not None:
                    await asyncio.shield(runner.starting)
            except BaseException:
                self._release(runner)
                raise
            if runner.state.state == "ready":
                return runner
            self._release(runner)  # it died or began draining while we waited: choose again

    def _choose(self, environment: Environment,
                avoid: Collection[RunnerProcess]) -> RunnerProcess:
        runners = [r for r in self._envs.get(environment, []) if r.state.accepts_work
                   and (r.state.state == "starting" or r.alive)]  # not one dying unnoticed
        # the least loaded, a ready one before a starting one (which the lease waits for)
        best = min((r for r in runners if r not in avoid),
                   key=lambda r: (r.state.leases, r.state.state != "ready"), default=None)
        if best is None or (best.state.leases > 0 and len(runners) < self.per_environment):
            best = self._spawn(environment)
        best.state.lease()
        return best

    def _release(self, runner: RunnerProcess) -> None:
        runner.state.release(asyncio.get_running_loop().time())
        self._changed(runner)

    def _spawn(self, environment: Environment) -> RunnerProcess:
        if self.closed:
            raise RunnerDied("the WM is shutting down")
        runner = RunnerProcess(environment, self.router, self._log,
                               on_request=self._delegate, on_change=self._changed)
        runner.folders = self.folders
        self._envs.setdefault(environment, []).append(runner)
        self._owned.add(runner)
        runner.starting = self._track(asyncio.get_running_loop().create_task(runner.start()),
                                      log_failure=False)
        self._evict_over_cap()
        return runner

    async def _delegate(self, runner: RunnerProcess, method: str, params: Any) -> Any:
        if self.on_request is None:
            raise RuntimeError(f"the WM does not answer {method}")
        return await self.on_request(runner, method, params)

    # -- lifecycle bookkeeping (synchronous: decisions never span an await) -----------------

    def _changed(self, runner: RunnerProcess) -> None:
        """React to a state change: forget stopped runners, stop drained retired ones."""
        state = runner.state
        if not state.live:
            self._forget(runner)
            self._owned.discard(runner)
        elif state.stop_due and not runner.stopping:
            self._forget(runner)
            self._track(runner.stop_soon())
        elif state.evictable:
            self._evict_over_cap()

    def _forget(self, runner: RunnerProcess) -> None:
        runners = self._envs.get(runner.environment, [])
        if runner in runners:
            runners.remove(runner)
            if not runners:
                del self._envs[runner.environment]

    def _evict_over_cap(self) -> None:
        live = [r for runners in self._envs.values() for r in runners]
        excess = len(live) - self.max_runners
        if excess <= 0:
            return
        idle = sorted((r for r in live if r.state.evictable), key=lambda r: r.state.last_used)
        for runner in idle[:excess]:
            runner.state.retire()  # draining and idle: stop_due
            self._forget(runner)
            self._track(runner.stop_soon())

    def _track(self, task: asyncio.Task[None], *, log_failure: bool = True
               ) -> asyncio.Task[None]:
        """Keep a runner's start or stop task until it ends (`stop_all` waits for them)."""
        self._stopping.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._stopping.discard(t)
            if not t.cancelled() and t.exception() is not None and log_failure:
                self._log(f"runner stop failed: {t.exception()!r}")

        task.add_done_callback(done)
        return task

    # -- warm-up and shutdown ---------------------------------------------------------------

    async def warm(self, environments: list[Environment]) -> None:
        """Start the runners a first request would use, ahead of it: `per_environment` of each
        environment, up to the `max_runners` cap in all.

        A warming runner holds no lease: the first executions of its environment take it.
        """
        starting = []
        room = self.max_runners - len(self._owned)
        for environment in dict.fromkeys(environments):
            for _ in range(self.per_environment - len(self._envs.get(environment, []))):
                if room <= 0:
                    break
                room -= 1
                starting.append((environment, self._spawn(environment)))
        for environment, runner in starting:
            assert runner.starting is not None
            try:
                await asyncio.shield(runner.starting)
            except Exception as exc:
                self._log(f"could not warm a runner for {environment.label}: {exc}")

    def has_ready(self, environment: Environment, *,
                  avoid: Collection[RunnerProcess] = ()) -> bool:
        return any(r.state.state == "ready" and r not in avoid
                   for r in self._envs.get(environment, []))

    def runners(self) -> list[RunnerProcess]:
        return [r for runners in self._envs.values() for r in runners]

    def pids(self) -> list[int]:
        """Every runner process this pool may still own (live, starting or being stopped)."""
        return [r.proc.pid for r in self._owned if r.proc is not None and r.proc.returncode
                is None]

    def kill_all(self) -> None:
        """Synchronously SIGKILL every runner (a person asked twice to stop)."""
        self.closed = True
        for runner in self._owned:
            runner.terminate()

    async def stop_all(self) -> None:
        """Stop every runner; none starts afterwards (a late lease gets `RunnerDied`)."""
        self.closed = True
        while self._owned or self._stopping:
            runners = list(self._owned)
            self._envs = {}
            for runner in runners:
                if runner.starting is not None and not runner.starting.done():
                    runner.starting.cancel()
            await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
            self._owned.difference_update(runners)
            await asyncio.gather(*list(self._stopping), return_exceptions=True)
