"""The WM's services, one instance per editor or terminal session.

Both front ends (LSP server, terminal) go through here: the same workspace model, the same
runner pool, the same `Batch` and its aggregated stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from finecode_er.reporter import Emit

from .batch import Batch, plan
from .history import History
from .requests import RunRequest
from .runners import RunnerPool
from .workspace import Workspace

__all__ = ["FineCode"]

Log = Callable[[str], None]


class FineCode:
    def __init__(self, log: Log, *, max_parallel: int | None = None,
                 report: Log | None = None) -> None:
        """`log` takes diagnostics; `report` takes config problems a person must see."""
        self.log = log
        self.workspace = Workspace()
        self.pool = RunnerPool(log, max_parallel=max_parallel, report=report)
        self.history = History()  # how long each (project, action) took: weighs the bar by time

    def set_folders(self, folders: list[Path]) -> list[str]:
        """Discover projects; returns config problems to show the user."""
        return self.workspace.set_folders(folders)

    def list_projects(self) -> list[dict[str, object]]:
        return self.workspace.listing()

    def batch(self, request: RunRequest, *, emit: Awaitable[Emit | None] | Emit | None,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> Batch:
        """Plan a request (raises `BadRequest` on bad input) into a runnable batch."""
        planned = plan(self.workspace, request.actions, request.projects)
        title = "FineCode: " + ", ".join(request.actions)
        return Batch(self.pool, planned, title=title, params=request.params,
                     options=request.options, emit=emit, on_result=on_result, log=self.log,
                     history=self.history)

    async def warm(self) -> None:
        await self.pool.warm(list(self.workspace.projects.values()))

    async def close(self) -> None:
        await self.pool.stop_all()
