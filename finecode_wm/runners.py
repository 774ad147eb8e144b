"""Extension Runner processes: one per project, started on demand, restarted after they die.

Each runner's `$/progress` goes straight from the pipe to the `ProgressRouter` (no generic
dispatch, no task per message), which hands it to whoever minted the token. stderr is drained
into the log so a chatty handler can never block on a full pipe; its last lines are kept for
the error when a runner dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import finecode_er
from finecode_er.wire import Connection, ConnectionClosed

from .workspace import Project

__all__ = ["ProgressRouter", "RunnerDied", "RunnerPool", "RunnerProcess"]

Log = Callable[[str], None]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 2.0
STDERR_TAIL = 20
CANCEL_GRACE = 2.0  # a handler that ignores a cancel this long gets its runner killed
STDERR_LINES_PER_SECOND = 200  # forwarded to the editor's log; the rest are counted
RETIRED_TOKENS = 1024
MIN_RUNNERS = 8  # default cap on live runners: max(this, max_parallel)


def runner_path() -> str:
    """A directory holding only `finecode_er` (a link), for a project interpreter's PYTHONPATH.

    Adding the WM's own site-packages instead would shadow the project's packages.
    """
    package = Path(finecode_er.__file__).resolve().parent
    digest = hashlib.sha1(str(package).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    base = cache / "finecode" / f"runner-{finecode_er.__version__}-{digest}"
    link = base / "finecode_er"
    if not link.exists():
        base.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            link.symlink_to(package, target_is_directory=True)
    return str(base)


class RunnerDied(Exception):
    """A runner could not start, or exited while a request was in flight."""


class ProgressRouter:
    """Maps the WM's internal child tokens to the code that folds their progress."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._routes: dict[str, Callable[[Any], None]] = {}
        # Released tokens: a cancelled child's runner may still send its last values there.
        self._retired: dict[str, None] = {}
        self._ids = itertools.count(1)
        self.dropped = 0

    def mint(self, deliver: Callable[[Any], None]) -> str:
        token = f"fc-{next(self._ids)}"
        self._routes[token] = deliver
        return token

    def release(self, token: str) -> None:
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
    """One `python -m finecode_er` child for one project."""

    def __init__(self, project: Project, router: ProgressRouter, log: Log) -> None:
        self.project = project
        self.problems: list[str] = []  # handlers that did not import, from initialize
        self._router = router
        self._log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.conn: Connection | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._tasks: list[asyncio.Task[None]] = []
        self.killed_because: str | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self.busy = 0  # requests in flight or about to be sent: never evicted while > 0
        self.retired = False  # replaced (config changed): stops when its last lease ends
        self.ready = False  # initialize answered
        self.last_used = 0.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and not (
            self.conn is not None and self.conn.closed)

    def _env(self) -> dict[str, str]:
        """Make this distribution's runner importable for a project's own interpreter."""
        env = dict(os.environ)
        if self.project.python != sys.executable:
            here = runner_path()
            env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        return env

    async def start(self) -> None:
        project = self.project
        try:
            self.proc = await asyncio.create_subprocess_exec(
                project.python, "-m", "finecode_er", cwd=project.root, env=self._env(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=2**24)
        except OSError as exc:
            raise RunnerDied(f"cannot start a runner for {project.root} with "
                             f"{project.python}: {exc.strerror or exc}") from None
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.conn = Connection(self.proc.stdout, self.proc.stdin, log=self._log,
                               on_notification=self._notified)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.conn.serve()), loop.create_task(self._drain())]
        params = {"projectRoot": str(project.root), "clientName": "finecode_wm",
                  "actions": {name: a.to_json() for name, a in project.actions.items()}}
        try:
            info = await asyncio.wait_for(self.request("initialize", params), START_TIMEOUT)
            self.problems = [str(p) for p in info.get("problems", [])] if isinstance(
                info, dict) else []
            self.ready = True
        except TimeoutError:
            await self.kill()
            raise RunnerDied(f"runner for {project.root} did not start within "
                             f"{START_TIMEOUT:.0f} s{self._tail()}") from None
        except BaseException:
            await self.kill()
            raise

    def _notified(self, method: str, params: Any) -> None:
        if method == "$/progress":
            self._router.deliver(params)

    async def _drain(self) -> None:
        """Keep the pipe empty; forward at most a bounded number of lines a second."""
        assert self.proc is not None and self.proc.stderr is not None
        loop = asyncio.get_running_loop()
        name = self.project.name
        window, sent, skipped = loop.time(), 0, 0
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text[:500])
            now = loop.time()
            if now - window >= 1.0:
                if skipped:
                    self._log(f"[{name}] ({skipped} stderr lines not forwarded)")
                window, sent, skipped = now, 0, 0
            if sent < STDERR_LINES_PER_SECOND:
                sent += 1
                self._log(f"[{name}] {text[:2000]}")
            else:
                skipped += 1

    def _tail(self) -> str:
        return (":\n" + "\n".join(self.stderr_tail)) if self.stderr_tail else ""

    async def request(self, method: str, params: Any) -> Any:
        """A request to the runner; a runner that dies meanwhile raises `RunnerDied`."""
        if self.conn is None:
            raise RunnerDied("runner not started")
        try:
            return await self.conn.request(method, params)
        except ConnectionClosed:
            code = await self._exit_code()
            why = f": {self.killed_because}" if self.killed_because else self._tail()
            raise RunnerDied(f"runner for {self.project.name} exited (code {code}){why}") from None
        except asyncio.CancelledError:
            watcher = asyncio.get_running_loop().create_task(self._watch_cancel())
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
            raise

    async def _watch_cancel(self) -> None:
        """Kill the runner if a cancelled request is still unanswered after the grace period."""
        await asyncio.sleep(CANCEL_GRACE)
        conn = self.conn
        if conn is None or not self.alive:
            return
        deadline = asyncio.get_running_loop().time() - CANCEL_GRACE
        if any(since <= deadline for since in conn.cancelling.values()):
            self.killed_because = (f"a handler ignored cancellation for {CANCEL_GRACE:g} s; "
                                   "the runner was killed and restarts on next use")
            self._log(f"[{self.project.name}] {self.killed_because}")
            await self.kill()

    async def _exit_code(self) -> int | None:
        assert self.proc is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 1.0)
            # let the drain read the last stderr lines
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 0.5)
        return self.proc.returncode

    async def stop(self) -> None:
        """`shutdown` + `exit`, then close stdin; kill if it does not go within the timeout."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            await self.kill()
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.request("shutdown", None), STOP_TIMEOUT)
            assert self.conn is not None
            self.conn.notify("exit")
        await self.kill(grace=STOP_TIMEOUT)

    async def kill(self, grace: float = 0.0) -> None:
        """Make sure the process is gone and its pipes are closed."""
        proc = self.proc
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.returncode is None and grace:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), grace)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RunnerPool:
    """The runners of a workspace: one per project, started when first needed.

    Two settings bound the cost, whatever the workspace size: `max_parallel` child executions
    at once (callers hold `slots`), and `max_runners` live processes — starting one more stops
    the least recently used idle runner.
    """

    def __init__(self, log: Log, *, max_parallel: int | None = None,
                 max_runners: int | None = None, report: Log | None = None) -> None:
        self._log = log
        self._report = report or log  # config problems a person must see
        self._reported: set[str] = set()
        self.router = ProgressRouter(log)
        self._runners: dict[Path, RunnerProcess] = {}
        self._locks: dict[Path, asyncio.Lock] = {}
        self._room = asyncio.Lock()
        self._retired: set[RunnerProcess] = set()
        self.max_parallel = max_parallel or os.cpu_count() or 2
        self.slots = asyncio.Semaphore(self.max_parallel)
        self._max_runners = max_runners

    @property
    def max_runners(self) -> int:
        return self._max_runners or max(MIN_RUNNERS, self.max_parallel)

    def set_limits(self, *, max_parallel: int | None = None,
                   max_runners: int | None = None) -> None:
        """Change the caps before work starts (from the editor's initializationOptions)."""
        if max_parallel:
            self.max_parallel = max_parallel
            self.slots = asyncio.Semaphore(max_parallel)
        if max_runners:
            self._max_runners = max_runners

    @contextlib.asynccontextmanager
    async def lease(self, project: Project) -> AsyncIterator[RunnerProcess]:
        """The project's runner, (re)started as needed, never evicted while leased."""
        runner = await self._acquire(project)
        try:
            yield runner
        finally:
            runner.busy -= 1
            runner.last_used = asyncio.get_running_loop().time()
            if runner.retired and runner.busy == 0:
                self._retired.discard(runner)
                await runner.stop()

    async def _acquire(self, project: Project) -> RunnerProcess:
        lock = self._locks.setdefault(project.root, asyncio.Lock())
        async with lock:
            runner = self._runners.get(project.root)
            if runner is None or not runner.alive or runner.project != project:
                runner = await self._start(project, runner)
            runner.busy += 1
            return runner

    async def _start(self, project: Project, old: RunnerProcess | None) -> RunnerProcess:
        if old is not None:
            self._log(f"restarting the runner of {project.name}")
            self._runners.pop(project.root, None)
            if old.busy and old.alive:
                old.retired = True  # other requests still use it: stop it after them
                self._retired.add(old)
            else:
                await old.kill()
        async with self._room:
            await self._evict_idle(keep=self.max_runners - 1)
            runner = RunnerProcess(project, self.router, self._log)
            self._runners[project.root] = runner
        try:
            await runner.start()
        except BaseException:
            self._runners.pop(project.root, None)
            raise
        for problem in runner.problems:
            if problem not in self._reported:
                self._reported.add(problem)
                self._report(problem)
        return runner

    async def _evict_idle(self, keep: int) -> None:
        live = [r for r in self._runners.values() if r.alive or r.proc is None]
        idle = sorted((r for r in live if r.busy == 0 and r.proc is not None),
                      key=lambda r: r.last_used)
        for runner in idle[:max(0, len(live) - keep)]:
            self._runners.pop(runner.project.root, None)
            await runner.stop()

    def is_warm(self, project: Project) -> bool:
        runner = self._runners.get(project.root)
        return runner is not None and runner.ready and runner.alive and runner.project == project

    async def warm(self, projects: list[Project]) -> None:
        """Start runners ahead of the first request (as many as the cap allows)."""
        projects = projects[:self.max_runners]

        async def one(project: Project) -> None:
            async with self.slots, self.lease(project):
                pass

        results = await asyncio.gather(*(one(p) for p in projects), return_exceptions=True)
        for project, result in zip(projects, results, strict=True):
            if isinstance(result, BaseException):
                self._log(f"could not warm the runner of {project.name}: {result}")

    def pids(self) -> list[int]:
        runners = [*self._runners.values(), *self._retired]
        return [r.proc.pid for r in runners if r.proc is not None and r.alive]

    async def stop_all(self) -> None:
        runners = [*self._runners.values(), *self._retired]
        self._runners, self._retired = {}, set()
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
