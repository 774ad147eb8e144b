"""Paced progress streams: the edge between the pure `progress` module and a pipe.

`PacedStream` owns a `Stream` over a measure (a `Work` tree, a batch), sends the newest state
at most once per interval (begin and end are never delayed; the latest state is flushed before
end) and hands LSP-shaped values to an `emit` callback. The runner's `ExecutionReporter` and
the WM's batch progress are both built on it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Protocol

from .progress import Composite, Stream, Value

Emit = Callable[[Value], None]

REPORT_INTERVAL = 0.1
MAX_TEXT = 1000  # characters of a title or message a runner sends (a handler may pass anything)


def cut(text: str | None) -> str | None:
    """`text` cut to `MAX_TEXT` characters (non-strings pass: the WM drops them, logged)."""
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT - 1] + "…"
    return text


class Measure(Protocol):
    """What a stream shows the fraction of: a `Work` tree, or the WM's batch of children."""

    def fraction(self) -> float | None: ...


class PacedStream:
    """One client-visible stream over a measure, paced and coalesced.

    The shape: callers update the state (a `Work` tree, a narrative) and call `touch()`; a report
    goes out at once when it is `due`, else a timer flushes the newest state at `due`. While
    that timer is pending, a caller may skip `touch()` (`advance()` asks every few calls).
    """

    def __init__(self, emit: Emit, measure: Measure, *,
                 interval: float = REPORT_INTERVAL) -> None:
        self._emit = emit
        self.measure = measure
        self.stream: Stream | None = None
        self.interval = interval
        self.due = math.inf  # monotonic time from which the next report may go out
        self.dirty = False
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    # hooks for subclasses ------------------------------------------------------------------

    def message(self) -> str | None:
        """The narrative shown with the next value."""
        return None

    def extra(self, fraction: float | None) -> Value | None:
        """Fields sent along with begin and reports (none by default)."""
        return None

    # lifecycle ------------------------------------------------------------------------------

    @property
    def begun(self) -> bool:
        return self.stream is not None

    def begin(self, title: str, *, cancellable: bool, determinate: bool) -> None:
        if self.stream is not None or self.closed:
            return
        stream = self.stream = Stream(title, cancellable=cancellable)
        fraction = self.measure.fraction()
        value = stream.begin(determinate=determinate, fraction=fraction, message=self.message(),
                             extra=self.extra(fraction))
        self.due = time.monotonic() + self.interval
        self._emit(value)

    def touch(self) -> bool:
        """Note new state; True when a report went out just now (the caller may yield)."""
        if self.stream is None or self.closed:
            return False
        self.dirty = True
        now = time.monotonic()
        if now >= self.due:
            self.flush()
            return True
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.due - now, self.flush)
        return False

    def flush(self, *, complete: bool = False) -> None:
        """Send the newest state if it shows anything new; the next report is due an interval on."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        stream = self.stream
        if stream is None or stream.state != "active" or not (self.dirty or complete):
            return
        self.dirty = False
        self.due = time.monotonic() + self.interval
        fraction = 1.0 if complete else self.measure.fraction()
        value = stream.report(fraction=fraction, message=self.message(), complete=complete,
                              extra=self.extra(fraction))
        if value is not None:
            self._emit(value)

    def close(self, outcome: str, *, complete: bool) -> None:
        """Flush, then end the stream (if it began) with the outcome; later activity is ignored."""
        if self.closed:
            return
        self.flush(complete=complete)
        self.closed = True
        self.due = math.inf
        if self.stream is not None and self.stream.state == "active":
            self._emit(self.stream.end(outcome))


class ExecutionReporter(PacedStream):
    """Combines the scopes of one action execution into one begin … end on its token.

    The first scope opened begins the stream; it is determinate when the execution is
    measurable by then (several handlers, or a declared total). Begin and reports carry the
    work units (`total`, `done`) so the WM weights executions without un-rounding percentages.
    """

    def __init__(self, emit: Emit, *, title: str, handlers: int,
                 interval: float = REPORT_INTERVAL) -> None:
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

    def extra(self, fraction: float | None) -> Value | None:
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
