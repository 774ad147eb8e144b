"""Paced progress streams: the edge between the pure `progress` module and a pipe.

`PacedStream` owns a `Work` tree and a `Stream`, sends the newest state at most once per
interval (begin and end are never delayed; the latest state is flushed before end) and hands
LSP-shaped values to an `emit` callback. The runner's `ExecutionReporter` and the WM's batch
progress are both built on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .progress import Pacer, Stream, Value, Work

Emit = Callable[[Value], None]

REPORT_INTERVAL = 0.1
CLOCK_EVERY = 0.002  # read the clock about this often, however fast `touch()` is called
MAX_STRIDE = 256


class PacedStream:
    """One client-visible stream over a `Work` tree, paced and coalesced."""

    def __init__(self, emit: Emit, root: Work, *, interval: float = REPORT_INTERVAL) -> None:
        self._emit = emit
        self.root = root
        self.stream: Stream | None = None
        self._pacer = Pacer(interval)
        self.dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        # Hot-path protocol for `advance()`: set `dirty`, decrement `countdown`, and call
        # `touch()` only when it reaches 0. It is > 1 only while a report is scheduled.
        self.countdown = 1
        self._stride = 1
        self._clock_read = 0.0

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
        fraction = self.root.fraction()
        value = stream.begin(determinate=determinate, fraction=fraction, message=self.message(),
                             extra=self.extra(fraction))
        self._pacer.sent(time.monotonic())
        self._emit(value)

    def touch(self) -> bool:
        """Note new state; True when a report went out just now (the caller may yield).

        While a report is scheduled, `advance()` calls this only every `countdown` steps (the
        stride adapts so the clock is read about every `CLOCK_EVERY` seconds). The timer sends
        the newest state when the loop is free; the clock read covers handlers that keep the
        loop busy.
        """
        if self.stream is None or self.closed:
            return False
        self.dirty = True
        self.countdown = 1
        now = time.monotonic()
        if now - self._clock_read < CLOCK_EVERY:
            self._stride = min(self._stride * 2, MAX_STRIDE)
        else:
            self._stride = max(self._stride // 2, 1)
        self._clock_read = now
        self._countdown = self._stride
        delay = self._pacer.delay(now)
        if delay == 0.0:
            self.flush()
            return True
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(delay, self.flush)
        self.countdown = self._stride
        return False

    def flush(self, *, complete: bool = False) -> None:
        """Send the newest state if it shows anything new."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.countdown = 1
        stream = self.stream
        if stream is None or stream.state != "active" or not (self.dirty or complete):
            return
        self.dirty = False
        fraction = 1.0 if complete else self.root.fraction()
        value = stream.report(fraction=fraction, message=self.message(), complete=complete,
                              extra=self.extra(fraction))
        if value is not None:
            self._pacer.sent(time.monotonic())
            self._emit(value)

    def close(self, outcome: str, *, complete: bool) -> None:
        """Flush, then end the stream (if it began) with the outcome; later activity is ignored."""
        if self.closed:
            return
        self.flush(complete=complete)
        self.closed = True
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
        super().__init__(emit, Work(composite=True, expected=handlers), interval=interval)
        self._title = title
        self.narrative: str | None = None
        self._done = 0.0  # units reported so far: they only grow

    def handler_work(self) -> Work:
        """A part of the execution for one handler; its scopes go under it."""
        return self.root.add(composite=True)

    def message(self) -> str | None:
        return self.narrative

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
        self.begin(title or self._title, cancellable=cancellable,
                   determinate=self.root.units() is not None or self.root.fraction() is not None)

    def finish(self, outcome: str) -> None:
        self.close(outcome, complete=outcome == "done")


class NullReporter(ExecutionReporter):
    """Stands in when the caller asked for no progress: the same handler code, nothing sent."""

    def __init__(self, *, handlers: int = 1) -> None:
        super().__init__(_discard, title="", handlers=handlers)
        self.closed = True


def _discard(_: Value) -> None:
    return None
