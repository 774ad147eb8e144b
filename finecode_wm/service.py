"""The WM's services, one instance per editor or terminal session.

Both front ends (LSP server, terminal) go through here: the same workspace model, the same
runner pool, the same `Batch` and its aggregated stream.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from finecode_er.reporter import Emit
from finecode_er.wire import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, progress_sender

from .batch import BadRequest, Batch, plan
from .delegation import Execution
from .history import History
from .requests import RunRequest, parse_delegation
from .runners import RunnerPool, RunnerProcess
from .workspace import Workspace

__all__ = ["FineCode"]

Log = Callable[[str], None]


class FineCode:
    """Workspace, runners and the batch factory, with the policies around them.

    Owns what is not the runners' lifecycle: the concurrency limit (`max_parallel` child
    executions at once, across all requests), config problems shown once each, and which
    runners to warm.
    """

    def __init__(self, log: Log, *, max_parallel: int | None = None,
                 report: Log | None = None) -> None:
        """`log` takes diagnostics; `report` takes config problems a person must see."""
        self.log = log
        self._report = report or log
        self._reported: set[str] = set()
        self.workspace = Workspace()
        self.max_parallel = max_parallel or os.cpu_count() or 2
        self.slots = asyncio.Semaphore(self.max_parallel)
        self.pool = RunnerPool(log, per_environment=self.max_parallel)
        self.pool.on_request = self._runner_request
        self.history = History()  # how long each (project, action) took: weighs the bar by time

    def set_limits(self, *, max_parallel: int | None = None,
                   max_runners: int | None = None) -> None:
        """Change the caps before work starts (from the editor's initializationOptions)."""
        if max_parallel:
            self.max_parallel = max_parallel
            self.slots = asyncio.Semaphore(max_parallel)
        self.pool.set_limits(per_environment=max_parallel, max_runners=max_runners)

    def report(self, problem: str) -> None:
        """Tell the person about a config problem, once per process."""
        if problem not in self._reported:
            self._reported.add(problem)
            self._report(problem)

    def set_folders(self, folders: list[Path]) -> list[str]:
        """Discover projects; returns config problems to show the user."""
        problems = self.workspace.set_folders(folders)
        self.pool.folders = tuple(self.workspace.folders)
        return problems

    def list_projects(self) -> list[dict[str, object]]:
        return self.workspace.listing()

    def batch(self, request: RunRequest, *, emit: Awaitable[Emit | None] | Emit | None,
              on_result: Callable[[dict[str, Any]], None] | None = None,
              parent: Execution | None = None) -> Batch:
        """Plan a request (raises `BadRequest` on bad input) into a runnable batch.

        Configs edited since they were read are read again first: an edit takes effect on the
        next run (work in flight keeps the config it started with).
        """
        for problem in self.workspace.refresh(list(self.workspace.projects)):
            self.report(problem)
        planned = plan(self.workspace, request.actions, request.projects)
        title = "FineCode: " + ", ".join(request.actions)
        return Batch(self.pool, planned, title=title, slots=self.slots, params=request.params,
                     options=request.options, emit=emit, on_result=on_result,
                     on_problem=self.report, log=self.log, parent=parent, history=self.history)

    async def _runner_request(self, runner: RunnerProcess, method: str, params: Any) -> Any:
        """Requests from runners: `runAction` (a handler's `ctx.run_action`)."""
        if method != "runAction":
            raise RpcError(METHOD_NOT_FOUND, f"the WM does not answer {method!r}")
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "runAction params must be an object")
        parent = self.pool.router.owner(params.get("parent"))
        if not isinstance(parent, Execution):
            raise RpcError(INVALID_PARAMS, "runAction must name a running execution ('parent')")
        try:
            request = parse_delegation(params, parent.project.root)
            token = params.get("progressToken")
            emit = progress_sender(runner.conn.notify, token) \
                if token is not None and runner.conn is not None else None
            batch = self.batch(request, emit=emit, parent=parent)
        except BadRequest as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        task = asyncio.current_task()
        assert task is not None
        parent.delegated.add(task)
        try:
            async with parent.lending_slot():
                return await batch.run()
        finally:
            parent.delegated.discard(task)

    async def warm(self) -> None:
        """The runners a first request would use, started ahead of it (no project code)."""
        await self.pool.warm([p.environment for p in self.workspace.projects.values()])

    async def close(self) -> None:
        await self.pool.stop_all()
