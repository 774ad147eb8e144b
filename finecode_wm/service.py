"""The WM's one service, one instance per editor, agent or terminal session.

The three front ends (`lsp/`, `mcp/`, `cli/`) hold it as `service` and go through it: the same
workspace model, the same runner pool, the same `Batch` and its aggregated stream.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from finecode_er.pacing import Emit
from finecode_er.wire import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, progress_sender

from .batch import Batch
from .cache import ResultCache
from .delegation import Execution
from .history import History
from .planning import BadRequest, plan
from .requests import RunRequest, parse_delegation
from .results import Entry
from .runners.pool import RunnerPool
from .runners.process import RunnerProcess
from .workspace import Discovery, Workspace

__all__ = ["FineCode"]

Log = Callable[[str], None]


class FineCode:
    """Workspace, runners and the batch factory, with the policies around them.

    Owns what is not the runners' lifecycle: the concurrency limit (`max_parallel` child
    executions at once, across all requests), discovery (off the event loop, one scan at a
    time), config problems shown once each, and which runners to warm.
    """

    def __init__(self, log: Log, *, max_parallel: int | None = None,
                 report: Log | None = None, warn: Log | None = None,
                 cache_on_loop: bool = False) -> None:
        """`log` takes diagnostics; `report` takes config problems a person must see; `warn`
        takes pyproject.toml files that were skipped (not ours to judge, but worth a look) and
        a result cache that cannot work (said once). `cache_on_loop`: see `ResultCache`."""
        self.log = log
        self._report = report or log
        self._warn = warn or log
        self._reported: set[str] = set()
        self._discovering = asyncio.Lock()
        # Set once the folders were first scanned: until then nothing can be trusted.
        self.discovered = asyncio.Event()
        self.workspace = Workspace()
        self.max_parallel = max_parallel or os.cpu_count() or 2
        self.slots = asyncio.Semaphore(self.max_parallel)
        self.pool = RunnerPool(log, per_environment=self.max_parallel,
                               on_request=self._runner_request)
        self.history = History()  # how long each (project, action) took: weighs the bar by time
        # results reused while nothing they depend on changed (None: no result cache)
        self.cache: ResultCache | None = ResultCache(self.workspace, log=log, warn=self._warn,
                                                     on_loop=cache_on_loop)

    def set_limits(self, *, max_parallel: int | None = None,
                   max_runners: int | None = None) -> None:
        """Change the caps before work starts (from the editor's initializationOptions)."""
        if max_parallel:
            self.max_parallel = max_parallel
            self.slots = asyncio.Semaphore(max_parallel)
        self.pool.set_limits(per_environment=max_parallel, max_runners=max_runners)

    def speak_to(self, *, report: Log, warn: Log) -> None:
        """Say problems and warnings to another person from now on (the daemon's next caller),
        each once again: what the last one was told, this one was not."""
        self._report, self._warn = report, warn
        self._reported.clear()
        if self.cache is not None:
            self.cache.speak_to(warn)

    def report(self, problem: str) -> None:
        """Tell the person about a config problem, once per process."""
        self._once(problem, self._report)

    def _once(self, message: str, sink: Log) -> None:
        if message not in self._reported:
            self._reported.add(message)
            sink(message)

    def _applied(self) -> None:
        """After a scan: runners learn the folders (what is project code), and the person
        every problem and skipped file, each once."""
        self.pool.set_folders(tuple(self.workspace.folders))
        if self.workspace.folders:
            self.discovered.set()
        for problem in self.workspace.problems.values():
            self.report(problem)
        for skipped in self.workspace.skipped.values():
            self._once(skipped, self._warn)

    def set_folders(self, folders: list[Path]) -> None:
        """Discover projects on this thread (the terminal, before its loop starts)."""
        self.workspace.set_folders(folders)
        self._applied()

    async def discover(self, folders: list[Path] | None = None) -> None:
        """Walk `folders` (default: the current ones) for projects, off the event loop."""
        workspace = self.workspace
        await self._scan(lambda: workspace.scan(workspace.folders if folders is None
                                                else folders))

    async def refresh(self) -> None:
        """Read again, off the event loop, the known pyproject.toml files that changed."""
        await self._scan(self.workspace.scan)

    async def _scan(self, scan: Callable[[], Discovery]) -> None:
        """One scan at a time, in a worker thread; applied (and told) on the loop."""
        async with self._discovering:
            self.workspace.apply(await asyncio.to_thread(scan))
        self._applied()

    def list_projects(self) -> list[dict[str, object]]:
        return self.workspace.listing()

    async def prepare(self, *, rediscover: bool = False) -> None:
        """Before planning a run: configs edited since they were read are read again, so an
        edit takes effect on the next run (work in flight keeps the config it started with).
        `rediscover` walks the folders again too, for a front end that hears of no new
        projects (MCP)."""
        await (self.discover() if rediscover else self.refresh())

    def batch(self, request: RunRequest, *, emit: Awaitable[Emit | None] | Emit | None,
              on_result: Callable[[Entry], None] | None = None,
              parent: Execution | None = None, late_percentage: bool = False) -> Batch:
        """Plan a request (raises `BadRequest` on bad input) into a runnable batch; `prepare`
        first."""
        planned = plan(self.workspace, request.actions, request.projects)
        title = "FineCode: " + ", ".join(request.actions)
        return Batch(self.pool, planned.children, title=title, slots=self.slots,
                     params=request.params, options=request.options, emit=emit,
                     on_result=on_result, on_problem=self.report, log=self.log, parent=parent,
                     history=self.history, late_percentage=late_percentage,
                     config_errors=planned.config_errors, cache=self.cache)

    async def _runner_request(self, runner: RunnerProcess, method: str, params: Any) -> Any:
        """Requests from runners: `runAction` (a handler's `ctx.run_action`)."""
        if method != "runAction":
            raise RpcError(METHOD_NOT_FOUND, f"the WM does not answer {method!r}")
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "runAction params must be an object")
        parent = self.pool.owner(params.get("parent"))
        if not isinstance(parent, Execution):
            raise RpcError(INVALID_PARAMS, "runAction must name a running execution ('parent')")
        await self.prepare()
        if not parent.running:
            raise RpcError(INVALID_PARAMS, "runAction must name a running execution ('parent')")
        try:
            request = parse_delegation(params, parent.project.root)
            token = params.get("progressToken")
            emit = progress_sender(runner.notify, token) if token is not None else None
            batch = self.batch(request, emit=emit, parent=parent)
        except BadRequest as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        return await parent.delegate(batch.run)

    async def warm(self) -> None:
        """The runners a first request would use, started ahead of it (no project code)."""
        await self.pool.warm([p.environment for p in self.workspace.projects.values()])

    async def close(self) -> None:
        await self.pool.stop_all()
        if self.cache is not None:
            await self.cache.close()
