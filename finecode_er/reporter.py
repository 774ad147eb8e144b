"""The runner's side of progress: one action execution's scopes as one stream on its token.

`ExecutionReporter` combines every scope of one execution (sequential or concurrent handlers,
tasks, nested scopes) into one begin … end, paced (`pacing.PacedStream`), with the work units
(`total`, `done`) the WM weighs executions by. `NullReporter` stands in when the caller asked
for no progress.
"""

from __future__ import annotations

from .pacing import INTERNAL_INTERVAL, Emit, PacedStream
from .streams import Units, Value
from .work import Composite

__all__ = ["MAX_TEXT", "ExecutionReporter", "NullReporter", "cut"]

MAX_TEXT = 1000  # characters of a title or message a runner sends (a handler may pass anything)


def cut(text: str | None) -> str | None:
    """`text` cut to `MAX_TEXT` characters (non-strings pass: the WM drops them, logged)."""
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT - 1] + "…"
    return text


class ExecutionReporter(PacedStream):
    """Combines the scopes of one action execution into one begin … end on its token.

    The first scope opened begins the stream; it is determinate when the execution is
    measurable by then (several handlers, or a declared total). Begin and reports carry the
    work units (`total`, `done`) so the WM weights executions without un-rounding percentages.
    """

    def __init__(self, emit: Emit, *, title: str, handlers: int,
                 interval: float = INTERNAL_INTERVAL) -> None:
        self.root = Composite(expected=handlers)
        super().__init__(emit, self.root, interval=interval)
        self._title = title
        self.narrative: str | None = None
        self._done = 0.0  # units reported so far: they only grow

    def handler_work(self) -> Composite:
        """A part of the execution for one handler; its scopes go under it."""
        return self.root.add_composite()

    def message(self) -> str | None:
        return cut(self.narrative)

    def extra(self, fraction: float | None) -> Units | None:
        units = self.root.units()
        if units is None:
            return {}
        # A nested scope's share leaves its parent when it ends, until the parent advances:
        # the fraction dips for a moment, but work done is never undone.
        self._done = min(units, max(self._done, round((fraction or 0.0) * units, 6)))
        return {"total": units, "done": self._done}

    def opened(self, title: str, cancellable: bool) -> None:
        """A scope opened: the first one begins the stream."""
        if self.begun:
            self.touch()
            return
        self.begin(cut(title) or self._title, cancellable=cancellable,
                   determinate=self.root.units() is not None or self.root.fraction() is not None)

    def finish(self, outcome: str) -> None:
        self.close(cut(outcome) or outcome, complete=outcome == "done")


class NullReporter(ExecutionReporter):
    """Stands in when the caller asked for no progress: the same handler code, nothing sent."""

    def __init__(self, *, handlers: int = 1) -> None:
        super().__init__(_discard, title="", handlers=handlers)
        self.closed = True


def _discard(_: Value) -> None:
    return None
