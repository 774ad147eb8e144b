"""The runners of every environment: started on demand, shared, bounded, replaced when they die.

Projects on the same interpreter share their environment's runners (a project with
`isolated = true` is an environment of its own). `RunnerPool` keeps only the runners' lifecycle
(`lifecycle.RunnerState`): which runner takes the next execution, starting one when every ready
runner is busy (up to `per_environment`), evicting idle ones over the `max_runners` cap, stopping
them in the background — never while holding a decision across an await. It also owns the
child tokens (`routing.ProgressRouter`) that every runner's `$/progress` is routed by.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

from ..workspace import Environment
from .process import RequestHandler, RunnerDied, RunnerProcess
from .routing import ProgressRouter

__all__ = ["RunnerPool"]

Log = Callable[[str], None]
MIN_RUNNERS = 4  # default cap on live runners of all environments: max(this, per_environment)


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
                 max_runners: int | None = None, on_request: RequestHandler | None = None) -> None:
        """`on_request` answers the runners' requests (a handler's `ctx.run_action`)."""
        self._log = log
        self._router = ProgressRouter(log)
        self._envs: dict[Environment, list[RunnerProcess]] = {}
        self._owned: set[RunnerProcess] = set()  # every process not yet known to be gone
        self._background: set[asyncio.Task[None]] = set()  # runners' starts and stops
        self.per_environment = per_environment or os.cpu_count() or 2
        self._max_runners = max_runners
        self._on_request = on_request
        self._folders: tuple[Path, ...] = ()  # the workspace folders, told to every new runner
        self.closed = False  # after stop_all: no runner starts again

    @property
    def max_runners(self) -> int:
        return self._max_runners or max(MIN_RUNNERS, self.per_environment)

    def set_folders(self, folders: tuple[Path, ...]) -> None:
        """The workspace folders (their code is loaded from source only): told to every runner
        started from now on."""
        self._folders = folders

    def set_limits(self, *, per_environment: int | None = None,
                   max_runners: int | None = None) -> None:
        if per_environment:
            self.per_environment = per_environment
        if max_runners:
            self._max_runners = max_runners

    # -- child tokens -----------------------------------------------------------------------

    def mint(self, deliver: Callable[[Any], None], owner: object = None) -> str:
        """A fresh child token: the runners' `$/progress` on it goes to `deliver`; `owner` is
        the execution it names (found again by `owner()` for a runner's request)."""
        return self._router.mint(deliver, owner)

    def owner(self, token: Any) -> object:
        """The owner a live token was minted for, else None."""
        return self._router.owner(token)

    def release(self, token: str) -> None:
        """The child is over: late values on its token are dropped quietly."""
        self._router.release(token)

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
                await runner.started()
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
        runner = RunnerProcess(environment, self._router.deliver, self._log,
                               on_request=self._on_request, on_change=self._changed,
                               folders=self._folders)
        self._envs.setdefault(environment, []).append(runner)
        self._owned.add(runner)
        self._track(runner.start_soon(), log_failure=False)
        self._evict_over_cap()
        return runner

    # -- lifecycle bookkeeping (synchronous: decisions never span an await) -----------------

    def _changed(self, runner: RunnerProcess) -> None:
        """React to a state change: forget stopped runners, stop drained retired ones."""
        state = runner.state
        if not state.live:
            self._forget(runner)
            self._owned.discard(runner)
        elif state.stop_due:
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
        self._background.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._background.discard(t)
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
            try:
                await runner.started()
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

    async def retire_all(self) -> None:
        """Stop every runner; a later lease starts a new one (a daemon between two runs: a
        runner keeps the handler code it imported, and that code may change before the next
        run, as it would between two runs of their own)."""
        await self.stop_all()
        self.closed = False

    async def stop_all(self) -> None:
        """Stop every runner; none starts afterwards (a late lease gets `RunnerDied`)."""
        self.closed = True
        while self._owned or self._background:
            runners = list(self._owned)
            self._envs = {}
            for runner in runners:
                runner.cancel_start()
            await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
            self._owned.difference_update(runners)
            await asyncio.gather(*list(self._background), return_exceptions=True)
