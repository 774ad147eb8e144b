"""The handler-facing API: `RunActionContext` and its progress scopes.

A fixed interface: users' handlers rely on it.

A handler reports progress for the action it owns through `ctx.progress(...)`; the runner
combines every scope of one execution (sequential or concurrent handlers, tasks, nested scopes)
into one begin … end. Without a progress token the same code runs and nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any

from .caching import cacheable
from .reporter import ExecutionReporter
from .work import Composite, Scope

# `cacheable`: a handler's opt-in to the WM's result cache (see `caching`).
__all__ = ["DelegationError", "ProgressContext", "RunActionContext", "cacheable"]

Delegate = Callable[[str, "dict[str, Any] | None", "list[str] | None", "ProgressContext | None"],
                    Awaitable[dict[str, Any]]]


class DelegationError(Exception):
    """`ctx.run_action` was asked for something the WM cannot run (unknown action, a project
    outside the workspace, no WM to ask). A delegated child that *fails* is a result instead."""

# While a flush is pending, `advance()` asks the reporter only every this many calls: the timer
# sends the newest state when the handler yields to the loop; asking covers a handler that keeps
# the loop busy (a report then waits at most this many items past its time).
CHECK_EVERY = 16

# The innermost open scope in this task: scopes opened inside it (also from tasks spawned
# inside it) subdivide its current step instead of adding work of their own.
_current_scope: ContextVar[ProgressContext | None] = ContextVar("finecode_scope", default=None)


class ProgressContext:
    """One progress scope; `async with` begins it, leaving ends it (also on error or cancel)."""

    __slots__ = ("_cancellable", "_node", "_reporter", "_reset", "_title", "_total",
                 "_unchecked", "_work")

    def __init__(self, reporter: ExecutionReporter, work: Composite, title: str,
                 total: float | None, cancellable: bool) -> None:
        self._reporter = reporter
        self._work = work
        self._title = title
        self._total = total
        self._cancellable = cancellable
        self._node: Scope | None = None
        self._unchecked = 0
        self._reset: Any = None

    async def __aenter__(self) -> ProgressContext:
        if self._reporter.closed:
            return self  # no token (or the execution is over): every call is a no-op
        outer = _current_scope.get()
        parent = outer._node if outer is not None and outer._reporter is self._reporter else None
        self._node = (parent or self._work).add(total=self._total)
        self._reset = _current_scope.set(self)
        if self._title:
            self._reporter.narrative = self._title
        self._reporter.opened(self._title, self._cancellable)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._reset is not None:
            _current_scope.reset(self._reset)
        node, self._node = self._node, None  # calls after the scope ended are no-ops
        if node is not None:
            node.finish(abandoned=exc_type is not None)
            self._reporter.touch()

    async def advance(self, steps: float = 1, message: str | None = None) -> None:
        """Count `steps` more units done; cheap enough to call per item in a tight loop."""
        node = self._node
        if node is None:
            return
        node.done += steps
        reporter = self._reporter
        if message is not None:
            reporter.narrative = message
        if reporter.pending:  # a flush is pending: it will send this state
            self._unchecked += 1
            if self._unchecked < CHECK_EVERY:
                return
        self._unchecked = 0
        if reporter.touch():
            await asyncio.sleep(0)  # let the runner write the report and hear a cancel

    async def report(self, message: str | None = None, percentage: float | None = None) -> None:
        """Narrate, and/or state progress as a percentage of this scope."""
        node = self._node
        if node is None:
            return
        if percentage is not None:
            node.set_fraction(percentage / 100)
        if message is not None:
            self._reporter.narrative = message
        if self._reporter.touch():
            await asyncio.sleep(0)

    def attach(self) -> Attached | None:
        """A nested part of this scope's current step for delegated work (None: no progress)."""
        node = self._node
        if node is None or node.ended or self._reporter.closed:
            return None
        return Attached(node.add(), self._reporter)

    async def set_total(self, total: float) -> None:
        """Declare (or correct) the total once it is known; the shown bar never goes back."""
        node = self._node
        if node is None:
            return
        node.set_total(total)
        self._reporter.touch()


class Attached:
    """Delegated work in the current step of a scope (`ctx.run_action(..., progress=scope)`).

    The WM reports the delegated batch's fraction and narrative; they move this part of the
    step, like a nested scope, and become the parent's narrative.
    """

    __slots__ = ("_node", "_reporter")

    def __init__(self, node: Scope, reporter: ExecutionReporter) -> None:
        self._node = node
        self._reporter = reporter

    def update(self, fraction: float | None, message: str | None) -> None:
        """The delegated work's newest state: sent on the parent's stream, paced."""
        if self._node.ended:
            return
        if fraction is not None:
            self._node.set_fraction(fraction)
        if message is not None:
            self._reporter.narrative = message
        self._reporter.touch()

    def finish(self) -> None:
        """The delegation returned: its share leaves the step, which the parent advances."""
        self._node.finish()


class RunActionContext:
    """What a handler gets besides its params: where it runs, its config, and progress."""

    def __init__(self, *, project_root: Path, config: dict[str, Any], action: str,
                 reporter: ExecutionReporter, work: Composite,
                 partial: Callable[[Any], None] | None = None,
                 delegate: Delegate | None = None) -> None:
        self.project_root = project_root
        self.config = config
        self.action = action
        self._reporter = reporter
        self._work = work
        self._partial = partial
        self._delegate = delegate

    def progress(self, title: str, *, total: float | None = None,
                 cancellable: bool = False) -> ProgressContext:
        """A progress scope of this action; a no-op stream when the caller wants no progress."""
        return ProgressContext(self._reporter, self._work, title, total, cancellable)

    async def run_action(self, action: str, params: dict[str, Any] | None = None,
                         projects: list[str] | None = None,
                         progress: ProgressContext | None = None) -> dict[str, Any]:
        """Run another action through the WM, like a `runBatch`: `{results, summary}`.

        `projects=None` is this project; otherwise paths, absolute or relative to this
        project's root. A failed child is a result, not an exception. Progress does not cross
        the action boundary by itself: only with `progress=scope` (an open scope of this
        handler) does the delegated work move that scope's current step and narrate.
        """
        if self._delegate is None:
            raise DelegationError("run_action needs the WM: this runner was not started by it")
        return await self._delegate(action, params, projects, progress)

    def partial_result(self, value: Any) -> None:
        """Stream a piece of the result on the partial-result token (dropped when none)."""
        if self._partial is not None:
            self._partial(value)
