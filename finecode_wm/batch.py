"""One client request fanned out over child executions, with one aggregated progress stream.

Transport-agnostic: the LSP server and the terminal front end both plan a batch here, run it,
and receive the same progress values (`emit`) and per-child results (`on_result`).

Begin rule (progress rule 4, docs/progress.md): two or more children are measurable by their
count, so the stream begins at once and determinate. A single child is measurable only by its
own declared total, so the stream waits for that child's begin — at most `BEGIN_WAIT_WARM` when
its runner is warm, `BEGIN_WAIT_COLD` while it starts ("starting runners") — then begins
determinate or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finecode_er.progress import Value
from finecode_er.reporter import Emit, PacedStream
from finecode_er.wire import REQUEST_CANCELLED, RpcError

from .delegation import Execution, refusal
from .history import History
from .progress import BatchProgress, Child
from .runners import RunnerDied, RunnerPool, RunnerProcess
from .workspace import Environment, Project, Workspace

__all__ = ["BadRequest", "Batch", "BatchOptions", "plan"]

BEGIN_WAIT_WARM = 0.1
BEGIN_WAIT_COLD = 0.2
TOKEN_WAIT = 2.0
TICK = 0.5
Log = Callable[[str], None]


class BadRequest(ValueError):
    """Input a person has to fix: answered as InvalidParams."""


@dataclass(frozen=True)
class BatchOptions:
    concurrent: bool = True
    stop_on_failure: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class Planned:
    project: Project
    action: str


def plan(workspace: Workspace, actions: list[str],
         projects: list[str] | None = None) -> list[Planned]:
    """Every selected action in every selected project that defines it, in a stable order."""
    if not actions:
        raise BadRequest("'actions' must name at least one action")
    if projects is None:
        selected = sorted(workspace.projects.values(), key=lambda p: p.root)
        if not selected:
            raise BadRequest(f"no FineCode projects under "
                             f"{', '.join(map(str, workspace.folders)) or 'the workspace'} "
                             "(a project is a directory whose pyproject.toml has a "
                             "[tool.finecode] table)")
    else:
        selected = []
        for raw in projects:
            path = Path(raw)
            if not path.is_absolute():
                raise BadRequest(f"project path must be absolute: {raw!r}")
            try:
                path = path.resolve()
            except (OSError, ValueError) as exc:
                raise BadRequest(f"project path {raw!r:.80} cannot be used: {exc}") from None
            if not workspace.contains(path):
                raise BadRequest(f"{path} is outside the workspace folders "
                                 f"({', '.join(map(str, workspace.folders)) or 'none'})")
            project = workspace.projects.get(path)
            if project is None and not path.exists():
                raise BadRequest(f"{path} does not exist")
            if project is None:
                problem = workspace.problems.get(path)
                raise BadRequest(f"{path} has a broken FineCode config: {problem}" if problem else
                                 f"{path} is not a FineCode project (no [tool.finecode] table)")
            if project not in selected:
                selected.append(project)
    for action in actions:
        if not any(action in p.actions for p in selected):
            known = sorted({a for p in selected for a in p.actions})
            raise BadRequest(f"unknown action {action!r}: no selected project defines it "
                             f"(defined: {', '.join(known) or 'none'})")
    return [Planned(p, a) for p in selected for a in dict.fromkeys(actions) if a in p.actions]


class _BatchStream(PacedStream):
    """The editor-visible stream of one batch, re-worded every `TICK` s while it is open.

    The tick lets the narrative move without news from the children: a stall notice that
    counts up, an estimate of the time left. Unchanged wording is not resent.
    """

    def __init__(self, emit: Emit, progress: BatchProgress) -> None:
        super().__init__(emit, progress)
        self.progress = progress
        self._tick: asyncio.TimerHandle | None = None

    def message(self) -> str | None:
        determinate = self.stream is not None and self.stream.determinate
        return self.progress.narrative(time.monotonic(), estimate=determinate)

    def begin(self, title: str, *, cancellable: bool, determinate: bool) -> None:
        super().begin(title, cancellable=cancellable, determinate=determinate)
        self._ticked()

    def _ticked(self) -> None:
        if self.closed:
            return
        self.touch()
        self._tick = asyncio.get_running_loop().call_later(TICK, self._ticked)

    def close(self, outcome: str, *, complete: bool) -> None:
        if self._tick is not None:
            self._tick.cancel()
        super().close(outcome, complete=complete)


class Batch:
    """Runs planned children with a concurrency cap; cancels them all on request."""

    def __init__(self, pool: RunnerPool, planned: list[Planned], *, title: str,
                 slots: asyncio.Semaphore, params: dict[str, Any] | None = None,
                 options: BatchOptions | None = None,
                 emit: Awaitable[Emit | None] | Emit | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None,
                 on_problem: Log | None = None, log: Log | None = None,
                 parent: Execution | None = None, history: History | None = None) -> None:
        self._pool = pool
        self._chain = parent.chain if parent is not None else ()
        self._slots = slots
        self._on_problem = on_problem
        self._planned = planned
        self._title = title
        self._params = params or {}
        self.options = options or BatchOptions()
        self._emit_source = emit
        self._on_result = on_result
        self._log = log or (lambda _m: None)
        self._history = history
        self.progress = BatchProgress(
            [(p.project.name, p.action) for p in planned],
            [history.expected(str(p.project.root), p.action) if history else None
             for p in planned],
            lanes=pool.per_environment if self.options.concurrent else 1)
        self.results: list[dict[str, Any] | None] = [None] * len(planned)
        self._started: list[float | None] = [None] * len(planned)
        self._stream: _BatchStream | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._child_begun = asyncio.Event()
        self.cancelled = False
        self._halted: str | None = None
        self._ended = False
        self._beginning: asyncio.Task[None] | None = None

    # -- public -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel every child; `run()` then finishes normally with what was done."""
        self.cancelled = True
        self._halt("the batch was cancelled")

    def _halt(self, reason: str) -> None:
        if self._halted is None:
            self._halted = reason
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:  # a child halting the batch finishes its own record
                task.cancel()

    async def run(self) -> dict[str, Any]:
        """Run every child; the stream ends before this returns, whatever happens."""
        self.progress.started = time.monotonic()
        self._beginning = asyncio.get_running_loop().create_task(self._begin())
        outcome_cancelled = False
        try:
            await self._run_children()
        except asyncio.CancelledError:
            outcome_cancelled = True
            raise
        finally:
            await self._end(cancelled=outcome_cancelled or self.cancelled)
        return self.result()

    def result(self) -> dict[str, Any]:
        entries = [r for r in self.results if r is not None]
        summary = {s: sum(e["status"] == s for e in entries) for s in ("ok", "failed", "cancelled")}
        return {"results": entries, "summary": summary}

    # -- progress ---------------------------------------------------------------------------

    async def _resolve_emit(self) -> Emit | None:
        source = self._emit_source
        if source is None or callable(source):
            return source
        return await source

    async def _begin(self) -> None:
        emit = await self._resolve_emit()
        if emit is None or self._ended:
            return
        stream = self._stream = _BatchStream(emit, self.progress)
        if len(self._planned) == 1:
            first = self._planned[0]
            ready = self._pool.has_ready(first.project.environment_for(first.action))
            wait = BEGIN_WAIT_WARM if ready else BEGIN_WAIT_COLD
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._child_begun.wait(), wait)
        stream.begin(self._title, cancellable=True, determinate=self.progress.measurable())

    async def _end(self, *, cancelled: bool) -> None:
        """Make sure the stream begins (a token being created may still answer) and ends.

        A token request the client has not answered within `TOKEN_WAIT` is left to finish on
        its own (cancelling it inside pygls would show the user an error); it begins nothing.
        """
        self._child_begun.set()
        assert self._beginning is not None
        interrupted: asyncio.CancelledError | None = None
        try:
            await asyncio.wait_for(asyncio.shield(self._beginning), TOKEN_WAIT)
        except TimeoutError:
            pass
        except asyncio.CancelledError as exc:  # the request itself was cancelled meanwhile
            interrupted = exc
        except Exception as exc:  # the token could not be created: run silently
            self._log(f"progress token unavailable: {exc}")
        self._ended = True
        cancelled = cancelled or interrupted is not None
        if self._stream is not None:
            complete = not cancelled and all(r is not None and r["status"] != "cancelled"
                                             for r in self.results)
            self._stream.close(self.progress.outcome(cancelled=cancelled), complete=complete)
        if self.progress.dropped:
            self._log(f"{self._title}: dropped {self.progress.dropped} bad progress value(s) "
                      "from runners")
        if interrupted is not None:
            raise interrupted

    def _on_child_value(self, child: Child, value: Any) -> None:
        problem = self.progress.fold(child, value, time.monotonic())
        if problem is not None:
            if self.progress.dropped <= 10:
                self._log(f"{child.project}/{child.action}: dropped progress: {problem}")
            return
        if child.state == "active" and len(self._planned) == 1:
            self._child_begun.set()
        if self._stream is not None:
            self._stream.touch()

    # -- children ---------------------------------------------------------------------------

    async def _run_children(self) -> None:
        loop = asyncio.get_running_loop()
        if self.options.concurrent:
            self._tasks = [loop.create_task(self._run_child(i)) for i in range(len(self._planned))]
            await asyncio.gather(*self._tasks)
            return
        current = asyncio.current_task()
        for index in range(len(self._planned)):
            if current is not None and current.cancelling() and self._halted is None:
                self._halt("the request was cancelled")  # it reached the child, not us
            if self._halted is not None:
                self._record(index, "cancelled", error=f"not run: {self._halted}")
                continue
            task = loop.create_task(self._run_child(index))
            self._tasks = [task]
            await task
        if current is not None and current.cancelling():
            raise asyncio.CancelledError

    async def _run_child(self, index: int) -> None:
        planned = self._planned[index]
        child = self.progress.children[index]
        refused = refusal(self._chain, planned.project, planned.action)
        if refused is not None:
            self._record(index, "failed", error=refused)
            return
        try:
            async with self._slots:
                await self._execute(index, planned, child)
        except asyncio.CancelledError:
            self._record(index, "cancelled", error=self._halted or "cancelled")
        entry = self.results[index]
        if self.options.stop_on_failure and entry is not None and entry["status"] == "failed":
            self._halt(f"stopped at the first failure ({planned.project.name}/{planned.action})")

    async def _execute(self, index: int, planned: Planned, child: Child) -> None:
        """One child on a leased runner; its result is recorded before the lease ends."""
        self._started[index] = time.monotonic()
        router = self._pool.router
        project = planned.project
        execution = Execution(project, planned.action,
                              (*self._chain, (project.root, project.name, planned.action)),
                              self._slots)
        token = router.mint(lambda value: self._on_child_value(child, value), execution)
        action = project.actions[planned.action]
        timeout = self.options.timeout or action.timeout
        params = {"action": planned.action, "projectRoot": str(project.root),
                  "actionConfig": action.to_json(), "codeVersion": project.code_version(),
                  "params": self._params, "workDoneToken": token}
        try:
            async with self._leased(child, project.environment_for(planned.action)) as runner:
                try:
                    result = await asyncio.wait_for(runner.request("run", params), timeout)
                except TimeoutError:
                    self._record(index, "failed", error=f"timed out after {timeout:g} s")
                except RpcError as exc:
                    self._record_error(index, exc)
                else:
                    self._record(index, "ok", result=result)
        except RunnerDied as exc:
            self._record(index, "failed", error=str(exc))
        finally:
            router.release(token)
            execution.cancel_delegated()

    @contextlib.asynccontextmanager
    async def _leased(self, child: Child,
                      environment: Environment) -> AsyncIterator[RunnerProcess]:
        """A runner of `environment`; while none is ready, the child counts as waiting for a
        runner to start (said in the narrative)."""
        child.starting = not self._pool.has_ready(environment)
        try:
            async with self._pool.lease(environment) as runner:
                self.progress.running(child, time.monotonic())
                yield runner
        finally:
            child.starting = False

    def _record_error(self, index: int, exc: RpcError) -> None:
        self._record(index, "cancelled" if exc.code == REQUEST_CANCELLED else "failed",
                     error=exc.message, data=exc.data)
        planned = self._planned[index]
        if isinstance(exc.data, dict) and exc.data.get("kind") == "import" and \
                self._on_problem is not None:
            self._on_problem(f"{planned.project.root} action '{planned.action}': {exc.message}")

    def _record(self, index: int, status: str, *, result: Any = None, error: str | None = None,
                data: Any = None) -> None:
        if self.results[index] is not None:
            return
        planned = self._planned[index]
        started = self._started[index]
        seconds = time.monotonic() - started if started is not None else 0.0
        entry: Value = {"project": str(planned.project.root), "action": planned.action,
                        "status": status, "seconds": round(seconds, 3)}
        if status == "ok":
            entry["result"] = result
        else:
            entry["error"] = error
            if data is not None:
                entry["errorData"] = data
        self.results[index] = entry
        child = self.progress.children[index]
        if status == "ok" and self._history is not None and child.running_since is not None:
            self._history.record(str(planned.project.root), planned.action,
                                 time.monotonic() - child.running_since)
        self.progress.finish(child, status)
        if self._stream is not None:
            self._stream.touch()
        if self._on_result is not None:
            self._on_result(entry)
