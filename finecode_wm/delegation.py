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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from .workspace import Project

__all__ = ["MAX_DEPTH", "Execution", "refusal"]

MAX_DEPTH = 8

Link = tuple[Path, str, str]  # project root, project name, action


@dataclass(eq=False)
class Execution:
    """One running child execution, as a parent of delegated work."""

    project: Project
    action: str
    chain: tuple[Link, ...]  # its ancestors, then itself
    slots: asyncio.Semaphore
    delegated: set[asyncio.Task[object]] = field(default_factory=set)
    _lent: int = 0

    @contextlib.asynccontextmanager
    async def lending_slot(self) -> AsyncIterator[None]:
        """Give the slot back while waiting on delegated work; take one again afterwards."""
        self._lent += 1
        if self._lent == 1:
            self.slots.release()
        try:
            yield
        finally:
            self._lent -= 1
            if self._lent == 0:
                # Shielded: a cancel here must still leave the books balanced, because the
                # caller's `async with slots` releases one slot when it exits.
                await asyncio.shield(self.slots.acquire())

    def cancel_delegated(self) -> None:
        """The parent is over: nothing it started may outlive it."""
        for task in self.delegated:
            task.cancel()


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
