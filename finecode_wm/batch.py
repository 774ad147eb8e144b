"""One client request fanned out over child executions, with one aggregated progress stream.

Transport-agnostic: the three front ends (LSP, MCP, terminal) get a batch from the service, run
it, and receive the same progress values (`emit`) and per-child results (`on_result`).

Begin rule (progress rule 4, docs/progress.md): two or more children are measurable by their
count, so the stream begins at once and determinate. A single child is measurable only by its
own declared total, so the stream waits for that child's begin — at most `BEGIN_WAIT_WARM` when
its runner is warm, `BEGIN_WAIT_COLD` while it starts ("starting runners") — then begins
determinate or not.

A delegated batch (`ctx.run_action`) reports to the delegating runner instead, which takes a
late switch: its stream (`FractionStream`) begins at once and carries the batch's fraction
whenever there is one.

One cancel scope: the children run as tasks of the batch's `CancelScope` (one task each, or one
task running them in order). `cancel()` and stop-on-failure cancel that scope; cancelling the
task running `run()` cancels it too, as every task group does. The per-child timeout is an
`asyncio.timeout` around the child's request. What a child delegates runs in its execution's
scope (`delegation.Execution`), inside the child's task, so it is cancelled with the child.

Cancel decision (docs/progress.md#cancellation): every cancel path — `cancel()` (a progress
token's cancel, Ctrl-C, MCP) and the cancellation of the task running `run()` (`$/cancelRequest`,
a delegating parent's cancel) — ends in `_decide`, so the stream's end and the response always
agree. A cancel that comes after every child finished changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from finecode_er.handlers import describe_failure
from finecode_er.pacing import INTERNAL_INTERVAL, REPORT_INTERVAL, Emit, PacedStream
from finecode_er.streams import FractionStream, Stream
from finecode_er.wire import REQUEST_CANCELLED, MessageTooLarge, RpcError

from .aggregation import BatchProgress, Child
from .cache import Checked, Lookup, ResultCache
from .cancelscope import CancelScope
from .delegation import Execution, refusal
from .history import ChildTimes, History, signature
from .planning import BatchOptions, Planned
from .results import ConfigError, Entry, RunResult, Status, import_failure, summarize
from .runners.pool import RunnerPool
from .runners.process import RunnerDied, RunnerProcess
from .workspace import Environment

__all__ = ["Batch"]

BEGIN_WAIT_WARM = 0.1
BEGIN_WAIT_COLD = 0.2
TOKEN_WAIT = 2.0
TICK = 0.5
Log = Callable[[str], None]


def _signature_of(planned: Planned) -> str | None:
    """What determines a child's work besides its size (None when it cannot be read: that
    child then fails on its own when it runs, and has no history)."""
    try:
        return signature(planned.project.actions[planned.action].to_json(),
                         planned.project.code_version())
    except Exception:
        return None


class _BatchStream(PacedStream):
    """The aggregated stream of one batch, re-worded every `TICK` s while it is open.

    The tick lets the narrative move without news from the children: a stall notice that
    counts up, an estimate of the time left. Unchanged wording is not resent. A delegated
    batch's stream goes to the delegating runner as exact fractions (`FractionStream`), at the
    internal pace (that runner paces again), without an estimate (the parent's stream has one).
    """

    def __init__(self, emit: Emit, progress: BatchProgress, *, delegated: bool = False,
                 late: bool = False) -> None:
        shape = FractionStream if delegated else functools.partial(Stream, late=late)
        super().__init__(emit, progress, shape=shape,
                         interval=INTERNAL_INTERVAL if delegated else REPORT_INTERVAL)
        self.progress = progress
        self._tick: asyncio.TimerHandle | None = None

    def message(self) -> str | None:
        determinate = self.stream is not None and self.stream.determinate
        return self.progress.narrative(time.monotonic(), estimate=determinate) or None

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
                 on_result: Callable[[Entry], None] | None = None,
                 on_problem: Log | None = None, log: Log | None = None,
                 parent: Execution | None = None, history: History | None = None,
                 late_percentage: bool = False,
                 config_errors: list[ConfigError] | None = None,
                 cache: ResultCache | None = None) -> None:
        """`late_percentage`: `emit` takes a percentage that appears after begin (the terminal),
        so a single child measurable only later still gets a bar. `cache`: the result cache
        (`_from_cache`)."""
        self._pool = pool
        self._parent = parent  # the execution that delegated this batch, if one did
        self._config_errors = config_errors or []
        self._chain = parent.chain if parent is not None else ()
        self._slots = slots
        self._on_problem = on_problem
        self._planned = planned
        self._title = title
        self._params = params or {}
        self.options = options or BatchOptions()
        self._emit_source = emit
        self._late = late_percentage
        self._on_result = on_result
        self._log = log or (lambda _m: None)
        self._cache = cache
        self._lookups: list[Lookup | None] = [None] * len(planned)
        # What this batch's lookups found of the files cached entries stand on; shared by the
        # lookups asked for before any of its children ran (a new one once a child has run).
        self._checked: Checked = {}
        self._times = ChildTimes(history, [(str(p.project.root), p.action, _signature_of(p))
                                           for p in planned])
        self.progress = BatchProgress([(p.project.name, p.action) for p in planned],
                                      self._times.timings(),
                                      lanes=pool.per_environment if self.options.concurrent else 1)
        self.results: list[Entry | None] = [None] * len(planned)
        self._unfinished = len(planned)
        self._started: list[float | None] = [None] * len(planned)
        self._stream: _BatchStream | None = None
        self._scope = CancelScope()  # every child runs in it: `cancel()` cancels it
        self._child_begun = asyncio.Event()
        # A cancel was asked (`cancel()`, or the task running `run()` was cancelled) before the
        # batch settled.
        self._cancel_asked = False
        self._settled = not planned  # every child finished before any cancel was asked
        self.cancelled = False  # the decision (`_decide`): final once `run()` has returned
        self._halted: str | None = None
        self._ended = False
        self._beginning: asyncio.Task[None] | None = None

    # -- public -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel every unfinished child; `run()` then finishes normally with what was done.

        Once every child has finished, the batch is settled and a cancel changes nothing.
        """
        if self._settled:
            return
        self._cancel_asked = True
        self._halt("the batch was cancelled")

    def _halt(self, reason: str) -> None:
        """Stop every unfinished child (a child that halts the batch has its entry already)."""
        if self._halted is None:
            self._halted = reason
        self._scope.cancel()

    async def run(self) -> RunResult:
        """Run every child; the stream ends before this returns, whatever happens.

        When the task running this is cancelled, it raises `CancelledError` only if the batch
        ends cancelled (`_decide`); a cancel that came too late is absorbed and the result
        returned, as the stream said.
        """
        task = asyncio.current_task()
        assert task is not None
        self.progress.start(time.monotonic())
        self._beginning = asyncio.get_running_loop().create_task(self._begin())
        interrupted = False
        try:
            async with self._scope:
                self._start_children()
        except asyncio.CancelledError:  # the task running this was cancelled
            interrupted = self._cancel_asked = True
            if self._halted is None:
                self._halted = "the request was cancelled"
        except BaseException:
            self._not_run()
            await self._end(interrupted=True)
            raise
        self._not_run()
        if await self._end(interrupted=interrupted):
            if self.cancelled:
                raise asyncio.CancelledError
            while task.cancelling():  # the cancel came too late: it changes nothing
                task.uncancel()
        return self.result()

    def result(self) -> RunResult:
        """`{results, summary}`, and `config_errors` when the selection had any."""
        entries = [r for r in self.results if r is not None]
        result = RunResult(results=entries, summary=summarize(entries))
        errors = self.config_errors(entries)
        if errors:
            result["config_errors"] = errors
        return result

    def config_errors(self, entries: list[Entry]) -> list[ConfigError]:
        """The selected projects' config problems: broken configs, then handlers of `entries`
        that could not be imported."""
        return [*self._config_errors,
                *(ConfigError(project=e["project"],
                              error=f"action '{e['action']}': {e.get('error')}")
                  for e in entries if import_failure(e))]

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
        delegated = self._parent is not None
        stream = self._stream = _BatchStream(emit, self.progress, delegated=delegated,
                                             late=self._late)
        if len(self._planned) == 1 and not delegated:
            first = self._planned[0]
            ready = self._pool.has_ready(first.project.environment_for(first.action))
            wait = BEGIN_WAIT_WARM if ready else BEGIN_WAIT_COLD
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._child_begun.wait(), wait)
        stream.begin(self._title, cancellable=True, determinate=self.progress.measurable())

    async def _end(self, *, interrupted: bool) -> bool:
        """Make sure the stream begins (a token being created may still answer), decide the
        outcome, and end the stream with it; True when the running task was cancelled.

        A token request the client has not answered within `TOKEN_WAIT` is left to finish on
        its own (cancelling it inside pygls would show the user an error): `asyncio.wait`
        cancels nothing it waits for, on its timeout or when this task is cancelled.
        """
        self._child_begun.set()
        beginning = self._beginning
        assert beginning is not None
        try:
            await asyncio.wait([beginning], timeout=TOKEN_WAIT)
        except asyncio.CancelledError:  # the request itself was cancelled meanwhile
            interrupted = True
        if beginning.done() and not beginning.cancelled() and beginning.exception() is not None:
            # the token could not be created: the batch ran silently
            self._log(f"progress token unavailable: {beginning.exception()}")
        self._ended = True
        self.cancelled = self._decide(asked=self._cancel_asked or interrupted)
        if self._stream is not None:
            complete = not self.cancelled and all(r is not None and r["status"] != "cancelled"
                                                  for r in self.results)
            outcome = self.progress.outcome(cancelled=self.cancelled)
            if not self._planned and self._config_errors:
                outcome = f"nothing to run: {len(self._config_errors)} broken config(s)"
            self._stream.close(outcome, complete=complete)
        if self.progress.dropped:
            self._log(f"{self._title}: dropped {self.progress.dropped} bad progress value(s) "
                      "from runners")
        return interrupted

    def _decide(self, *, asked: bool) -> bool:
        """Did the batch end cancelled? The one decision behind both the stream's end and the
        response.

        Only a cancel asked before every child finished counts, and only if it stopped a
        child: a child whose answer arrived in the same instant as the cancel keeps it, and a
        batch whose children all finished is complete (100 %, an ok response) whatever
        arrives afterwards.
        """
        return asked and not self._settled and any(
            r is not None and r["status"] == "cancelled" for r in self.results)

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

    def _start_children(self) -> None:
        """One task per child in the batch's scope, or one task running them in order
        (`concurrent: false`); none once the batch was cancelled before it started."""
        if not self._scope.open:
            return
        if self.options.concurrent:
            for index in range(len(self._planned)):
                self._scope.start(self._run_child(index))
        else:
            self._scope.start(self._run_in_order())

    async def _run_in_order(self) -> None:
        for index in range(len(self._planned)):
            if self._halted is not None:
                return
            await self._run_child(index)

    def _not_run(self) -> None:
        """Every child gets an entry, even one whose task was cancelled before it began, or
        never started (no-op for the others)."""
        for index in range(len(self._planned)):
            self._record(index, "cancelled", error=f"not run: {self._halted or 'cancelled'}")

    async def _run_child(self, index: int) -> None:
        planned = self._planned[index]
        child = self.progress.children[index]
        if self._halted is not None:  # halted before this child's task began
            return  # its entry is `_not_run`'s
        refused = refusal(self._chain, planned.project, planned.action)
        if refused is not None:
            self._record(index, "failed", error=refused)
            return
        try:
            if not await self._from_cache(index, planned):
                async with self._slots:
                    await self._execute(index, planned, child)
        except asyncio.CancelledError:  # the batch's scope was cancelled
            self._record(index, "cancelled", error=self._halted or "cancelled")
            raise
        except Exception as exc:  # whatever goes wrong costs this child only
            error = f"could not run: {describe_failure(exc)}"
            self._log(f"{planned.project.name}/{planned.action}: {error}")
            self._record(index, "failed", error=error)
        entry = self.results[index]
        if self.options.stop_on_failure and entry is not None and entry["status"] == "failed":
            self._halt(f"stopped at the first failure ({planned.project.name}/{planned.action})")

    async def _from_cache(self, index: int, planned: Planned) -> bool:
        """Look the child up in the result cache (before it takes a slot or a runner): a hit is
        recorded at once as an ok, cached entry (True); a miss keeps the key its result will be
        stored under. `options.cache` false skips the reading, not the storing."""
        if self._cache is None:
            return False
        lookup = self._lookups[index] = await self._cache.lookup(
            planned.project, planned.action, self._params, read=self.options.cache,
            checked=self._checked)
        if not lookup.hit:
            return False
        self._record(index, "ok", result=lookup.result, cached=True)
        return True

    async def _execute(self, index: int, planned: Planned, child: Child) -> None:
        """One child on a leased runner; its result is recorded before the lease ends.

        What the child delegates (`ctx.run_action`) runs in its execution's scope, inside this
        task: cancelling the child cancels it, and it ends when the child does.
        """
        self._started[index] = time.monotonic()
        project = planned.project
        execution = Execution(project, planned.action,
                              (*self._chain, (project.root, project.name, planned.action)),
                              self._slots, up=self._parent)
        token = self._pool.mint(lambda value: self._on_child_value(child, value), execution)
        action = project.actions[planned.action]
        timeout = self.options.timeout or action.timeout
        config, version = action.to_json(), project.code_version()
        self._times.sent(index, signature(config, version))
        params: dict[str, Any] = {
            "action": planned.action, "projectRoot": str(project.root), "actionConfig": config,
            "codeVersion": version, "params": self._params, "workDoneToken": token}
        lookup = self._lookups[index]
        if lookup is not None and lookup.key is not None:
            params["cacheInfo"] = True  # the answer says whether and on what it may be cached
        environment = project.environment_for(planned.action)
        try:
            async with self._leased(child, execution, environment) as runner, execution.scope:
                try:
                    async with asyncio.timeout(timeout):
                        result = await runner.request("run", params)
                except TimeoutError:
                    self._record(index, "failed", error=f"timed out after {timeout:g} s")
                except RpcError as exc:
                    self._record_error(index, exc)
                except (TypeError, ValueError) as exc:  # raised before anything was sent
                    what = f"is {exc}" if isinstance(exc, MessageTooLarge) else \
                        f"holds a value JSON cannot carry: {exc}"
                    error = f"cannot send this run to its runner: its request {what}"
                    self._log(f"{project.name}/{planned.action}: {error}")
                    self._record(index, "failed", error=error)
                else:
                    if lookup is not None and self._cache is not None:
                        result = self._cache.finished(lookup, result)
                    self._record(index, "ok", result=result)
                finally:
                    self._pool.release(token)  # no runner's request names it from here on
                    execution.end()
        except RunnerDied as exc:
            self._record(index, "failed", error=str(exc))
        finally:
            self._pool.release(token)  # also when it never got a runner
            self._checked = {}  # time has passed: later lookups look at the files again

    @contextlib.asynccontextmanager
    async def _leased(self, child: Child, execution: Execution,
                      environment: Environment) -> AsyncIterator[RunnerProcess]:
        """A runner of `environment` for the execution, never one that hosts one of its
        ancestors (a crash of a delegated child's runner must not take its parent down); while
        none of its environment is ready, the child counts as waiting for a runner to start
        (said in the narrative)."""
        avoid = execution.ancestors_runners()
        if not self._pool.has_ready(environment, avoid=avoid):
            self.progress.waiting_for_runner(child)  # until it runs or finishes
        async with self._pool.lease(environment, avoid=avoid) as runner:
            execution.runner = runner
            self.progress.running(child, time.monotonic())
            yield runner

    def _record_error(self, index: int, exc: RpcError) -> None:
        self._record(index, "cancelled" if exc.code == REQUEST_CANCELLED else "failed",
                     error=exc.message, data=exc.data)
        planned = self._planned[index]
        entry = self.results[index]
        if entry is not None and import_failure(entry) and self._on_problem is not None:
            self._on_problem(f"{planned.project.root} action '{planned.action}': {exc.message}")

    def _record(self, index: int, status: Status, *, result: Any = None, error: str = "",
                data: Any = None, cached: bool = False) -> None:
        if self.results[index] is not None:
            return
        planned = self._planned[index]
        started = self._started[index]
        seconds = time.monotonic() - started if started is not None else 0.0
        entry = Entry(project=str(planned.project.root), action=planned.action, status=status,
                      seconds=round(seconds, 3))
        if cached:
            entry["cached"] = True
            self.progress.children[index].cached = True
        if status == "ok":
            entry["result"] = result
        else:
            entry["error"] = error
            if data is not None:
                entry["errorData"] = data
        self.results[index] = entry
        self._unfinished -= 1
        if not self._unfinished and not self._cancel_asked and \
                not self._scope.cancelled_from_outside():
            self._settled = True  # from here on, a cancel changes nothing
        child = self.progress.children[index]
        if status != "cancelled" and child.running_since is not None:
            self._times.ran(index, time.monotonic() - child.running_since, child.work.total)
        self.progress.finish(child, status)
        if self._stream is not None:
            self._stream.touch()
        if self._on_result is not None:
            self._on_result(entry)
