"""One progress stream per action execution, fed by every scope its handlers open.

The edge between the pure `progress` module and the pipe: it owns the `Work` tree of one
execution, paces reports (newest state wins, at most one per interval) and hands LSP-shaped
values, with the work units the WM needs for weighting, to an `emit` callback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .progress import Pacer, Stream, Value, Work

Emit = Callable[[Value], None]

REPORT_INTERVAL = 0.1


class ExecutionReporter:
    """Combines the scopes of one execution into one begin … end on its token."""

    def __init__(self, emit: Emit, *, title: str, handlers: int,
                 interval: float = REPORT_INTERVAL) -> None:
        self._emit = emit
        self._title = title
        self.root = Work(composite=True, expected=handlers)
        self._stream: Stream | None = None
        self._pacer = Pacer(interval)
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self.message: str | None = None
        self.closed = False

    def handler_work(self) -> Work:
        """A part of the execution for one handler; its scopes go under it."""
        return self.root.add(composite=True)

    def _units(self, fraction: float | None) -> dict[str, float]:
        units = self.root.units()
        if units is None:
            return {}
        return {"total": units, "done": round((fraction or 0.0) * units, 6)}

    def opened(self, title: str, cancellable: bool) -> None:
        """A scope opened: the first one begins the stream."""
        if self._stream is not None or self.closed:
            self.touch()
            return
        stream = self._stream = Stream(title or self._title, cancellable=cancellable)
        fraction = self.root.fraction()
        value = stream.begin(determinate=self.root.units() is not None or fraction is not None,
                             fraction=fraction, message=self.message,
                             extra=self._units(fraction))
        self._pacer.sent(time.monotonic())
        self._emit(value)

    def touch(self) -> bool:
        """Note new state; returns True when a report went out now (caller should yield)."""
        if self._stream is None or self.closed:
            return False
        self._dirty = True
        now = time.monotonic()
        if self._pacer.delay(now) == 0.0:
            self.flush()
            return True
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._pacer.delay(now), self.flush)
        return False

    def flush(self, *, complete: bool = False) -> None:
        """Send the newest state if it shows anything new."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        stream = self._stream
        if stream is None or stream.state != "active" or not (self._dirty or complete):
            return
        self._dirty = False
        fraction = self.root.fraction()
        value = stream.report(fraction=fraction, message=self.message, complete=complete,
                              extra=self._units(1.0 if complete else fraction))
        if value is None:
            return
        self._pacer.sent(time.monotonic())
        self._emit(value)

    def close(self, outcome: str) -> None:
        """End the stream (if it began) with the outcome; later scope activity is ignored."""
        if self.closed:
            return
        self.flush(complete=outcome == "done")
        self.closed = True
        if self._stream is not None and self._stream.state == "active":
            self._emit(self._stream.end(outcome))


class NullReporter(ExecutionReporter):
    """Stands in when the caller asked for no progress: the same handler code, nothing sent."""

    def __init__(self, *, handlers: int = 1) -> None:
        super().__init__(_discard, title="", handlers=handlers)
        self.closed = True


def _discard(_: Any) -> None:
    return None
