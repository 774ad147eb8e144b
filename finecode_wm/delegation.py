"""Actions that run actions (`ctx.run_action`): who asked, cycles, depth, and slots.

A runner asks the WM with a `runAction` request naming its execution (the child token the WM
gave it). The WM runs the delegated children as a batch of their own, with the same machinery
as `runBatch`, under these rules:

- **The boundary.** A delegated batch never opens a stream a client sees: it reports only to
  the parent's runner, and only when the parent attached a scope (`progress=scope`).
- **Cycles and depth.** Each execution knows its chain of ancestors. A child that would run an
  (project, action) already on the chain fails with the cycle spelled out; a chain deeper than
  `MAX_DEPTH` fails its children. Neither deadlocks nor runs away.
- **Slots.** A parent waiting on delegated work lends its concurrency slot to it and takes a
  slot back when the work is done, so `maxParallel = 1` cannot deadlock: at any moment the
  executions doing work (not waiting on children) are at most `maxParallel`.
- **Runners.** A delegated child never runs in the runner of one of its ancestors: a child that
  crashes its runner fails alone, and its parent still gets the result.
- **Scope.** A delegated batch runs inside its parent execution's cancel scope: cancelling the
  parent cancels it, and when the parent's run is over (answered, failed, timed out) whatever it
  delegated ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from .cancelscope import CancelScope
from .workspace import Project

if TYPE_CHECKING:
    from .runners.process import RunnerProcess

__all__ = ["MAX_DEPTH", "Execution", "refusal"]

MAX_DEPTH = 8

Link = tuple[Path, str, str]  # project root, project name, action
T = TypeVar("T")


@dataclass(eq=False)
class Execution:
    """One running child execution, as a parent of delegated work."""

    project: Project
    action: str
    chain: tuple[Link, ...]  # its ancestors, then itself
    slots: asyncio.Semaphore
    up: Execution | None = None  # the execution that delegated it
    runner: RunnerProcess | None = None  # once leased
    # What it delegated runs here, inside the task that runs the execution (entered there).
    scope: CancelScope = field(default_factory=CancelScope)
    _lent: int = 0  # delegations in progress
    _holding: bool = True  # the execution holds its slot (it was started with one)

    @property
    def running(self) -> bool:
        """It may still delegate: its run is under way, not over nor cancelled."""
        return self.scope.open

    async def delegate(self, run: Callable[[], Awaitable[T]]) -> T:
        """`run()` (a delegated batch) in this execution's scope, lending the slot meanwhile:
        cancelling the execution cancels it, and it ends when the execution does."""
        async def lent() -> T:
            async with self.lending_slot():
                return await run()

        return await self.scope.start(lent())

    def end(self) -> None:
        """The execution is over: nothing it delegated may outlive it."""
        self.scope.cancel()

    @contextlib.asynccontextmanager
    async def lending_slot(self) -> AsyncIterator[None]:
        """Give the slot back while waiting on delegated work; take one again afterwards.

        Only a slot actually held is given back: a delegation that starts while an earlier one
        is still taking its slot back must not release a second one.
        """
        self._lent += 1
        if self._holding:
            self._holding = False
            self.slots.release()
        try:
            yield
        finally:
            self._lent -= 1
            if self._lent == 0:
                # Shielded on purpose: the execution's own `async with slots` releases one slot
                # when it exits, so the slot lent must be taken back even when this task is
                # cancelled meanwhile; the bookkeeping runs when it is taken.
                taking = asyncio.ensure_future(self.slots.acquire())
                taking.add_done_callback(self._slot_taken)
                await asyncio.shield(taking)

    def _slot_taken(self, taking: asyncio.Task[Literal[True]]) -> None:
        if taking.cancelled():
            return
        if self._lent == 0:
            self._holding = True
        else:  # another delegation began meanwhile: it lends this slot at once
            self.slots.release()

    def ancestors_runners(self) -> set[RunnerProcess]:
        """The runners its ancestors run in: it must run elsewhere."""
        runners = set()
        execution = self.up
        while execution is not None:
            if execution.runner is not None:
                runners.add(execution.runner)
            execution = execution.up
        return runners


def _words(chain: tuple[Link, ...]) -> str:
    same_project = len({root for root, _, _ in chain}) == 1
    return " → ".join(action if same_project else f"{name}/{action}"
                      for _, name, action in chain)


def refusal(chain: tuple[Link, ...], project: Project, action: str) -> str | None:
    """Why a child (project, action) delegated from `chain` must not run, or None."""
    link = (project.root, project.name, action)
    for i, (root, _, name) in enumerate(chain):
        if (root, name) == (project.root, action):
            return f"delegation cycle: {_words((*chain[i:], link))}"
    if len(chain) >= MAX_DEPTH:
        return (f"delegation deeper than {MAX_DEPTH} levels: {_words((*chain, link))}")
    return None
