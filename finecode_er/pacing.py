"""Paced progress streams: the edge between the pure stream shapes (`streams`) and a pipe.

`PacedStream` owns a stream shape (`Stream`: what a client sees; `FractionStream`: what a
delegating runner is told) over a measure (a `Work` tree, a batch), and hands its values to an
`emit` callback, paced: a change goes out at once when the stream has sent nothing for an
interval (leading edge), later changes within the interval are coalesced into one report at
its end (newest state wins). Begin and end are never delayed; the latest state is flushed before
end. The runner's `ExecutionReporter` and the WM's batch streams are all built on it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Protocol

from .streams import Stream, Units, Value

__all__ = ["INTERNAL_INTERVAL", "RECHECK", "REPORT_INTERVAL", "Emit", "Measure", "PacedStream",
           "Shape"]

Emit = Callable[[Value], None]

REPORT_INTERVAL = 0.1  # what a client sees: at most ~10 reports a second
# Between FineCode's own processes (runner → WM, WM → a delegating runner), whose consumer paces
# again for the client: a shorter interval keeps the paced stages in series from adding up (two
# stages of equal interval can lock into a lag of up to a whole interval each).
INTERNAL_INTERVAL = 0.025
# After a flush that had nothing new to show, the next look is this much later: a storm of
# touches that change nothing costs at most 100 looks a second, and does not hold back the next
# real change by a whole interval (only the interval since the last value *sent* does).
RECHECK = 0.01


class Measure(Protocol):
    """What a stream shows the fraction of: a `Work` tree, or the WM's batch of children."""

    def fraction(self) -> float | None: ...


class Shape(Protocol):
    """The rules and values of one stream (`progress.Stream`, `progress.FractionStream`)."""

    state: str
    determinate: bool

    def begin(self, *, determinate: bool, fraction: float | None = None,
              message: str | None = None, extra: Units | None = None) -> Value: ...

    def report(self, *, fraction: float | None, message: str | None = None,
               complete: bool = False, extra: Units | None = None) -> Value | None: ...

    def end(self, message: str | None = None) -> Value | None: ...


class PacedStream:
    """One stream over a measure, paced and coalesced.

    The shape: callers update the state (a `Work` tree, a narrative) and call `touch()`; a report
    goes out at once when it is `due`, else a timer flushes the newest state at `due`. While
    that timer is pending, a caller may skip `touch()` (`advance()` asks every few calls).
    `due` is an interval after the last value sent, so a stream that has been quiet sends the
    next change at once.
    """

    def __init__(self, emit: Emit, measure: Measure, *, interval: float = REPORT_INTERVAL,
                 shape: Callable[[str, bool], Shape] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self.measure = measure
        self._shape = shape or Stream
        self._clock = clock
        self.stream: Shape | None = None
        self.interval = interval
        self.due = math.inf  # from when the next report may go out: an interval after the last
        self._recheck = -math.inf  # after a flush that showed nothing new: when to look again
        self.dirty = False
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    # hooks for subclasses ------------------------------------------------------------------

    def message(self) -> str | None:
        """The narrative shown with the next value."""
        return None

    def extra(self, fraction: float | None) -> Units | None:
        """Fields sent along with begin and reports (none by default)."""
        return None

    # lifecycle ------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """A report is scheduled: it will send the newest state without another `touch()`."""
        return self.timer is not None

    @property
    def begun(self) -> bool:
        return self.stream is not None

    def begin(self, title: str, *, cancellable: bool, determinate: bool) -> None:
        if self.stream is not None or self.closed:
            return
        stream = self.stream = self._shape(title, cancellable)
        fraction = self.measure.fraction()
        value = stream.begin(determinate=determinate, fraction=fraction, message=self.message(),
                             extra=self.extra(fraction))
        self.due = self._clock() + self.interval
        self._emit(value)

    def touch(self) -> bool:
        """Note new state; True when a report went out just now (the caller may yield)."""
        if self.stream is None or self.closed:
            return False
        self.dirty = True
        now = self._clock()
        at = max(self.due, self._recheck)
        if now >= at:
            return self.flush()
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(at - now, self.flush)
        return False

    def flush(self, *, complete: bool = False) -> bool:
        """Send the newest state if it shows anything new (True when it did); the next report
        is then due an interval on."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        stream = self.stream
        if stream is None or stream.state != "active" or not (self.dirty or complete):
            return False
        self.dirty = False
        now = self._clock()
        fraction = 1.0 if complete else self.measure.fraction()
        value = stream.report(fraction=fraction, message=self.message(), complete=complete,
                              extra=self.extra(fraction))
        if value is None:
            self._recheck = now + RECHECK
            return False
        self.due = now + self.interval
        self._emit(value)
        return True

    def close(self, outcome: str, *, complete: bool) -> None:
        """Flush, then end the stream (if it began) with the outcome; later activity is ignored."""
        if self.closed:
            return
        self.flush(complete=complete)
        self.closed = True
        self.due = math.inf
        if self.stream is not None and self.stream.state == "active":
            value = self.stream.end(outcome)
            if value is not None:
                self._emit(value)
