"""Folding many progress sources into one honest stream.

Pure state machines, no I/O and no clock: the runner uses them to combine a handler's
scopes into one stream per action execution, and the workspace manager uses the very same
classes one level up to combine child executions into the editor's stream.

- `Work` is a tree of work: a *composite* is the weighted sum of its parts (a batch of
  executions, the handlers of an action); a *scope* has declared steps (`total`, `done`) and its
  nested scopes subdivide the step in hand.
- `Stream` turns fractions into the LSP begin/report/end values a client sees, keeping the
  rules: one begin, percentage decided at begin, never decreasing, 100 only when complete,
  one end.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Stream", "StreamError", "Work"]

Value = dict[str, Any]


class Work:
    """One node of work whose progress can be measured (or honestly not).

    Weighting rule of a composite: a part weighs its declared units; a part whose units are not
    known (yet) weighs the mean of the known positive ones (1 when none is known), so that the
    count of parts is the measure until totals arrive and declared totals refine it as they do.
    A total of 0 is work already done: it weighs nothing and never drags that mean down.
    """

    __slots__ = (
        "_active",
        "_ended_known",
        "_ended_known_done",
        "_ended_known_units",
        "_ended_positive",
        "_ended_unknown",
        "_ended_unknown_done",
        "composite",
        "done",
        "ended",
        "expected",
        "hint",
        "parent",
        "total",
    )

    def __init__(
        self,
        *,
        total: float | None = None,
        composite: bool = False,
        expected: int = 0,
        parent: Work | None = None,
    ) -> None:
        self.total = total
        self.done = 0.0
        self.hint: float | None = None  # a fraction reported directly, for work without total
        self.ended = False
        self.composite = composite
        self.expected = expected
        self.parent = parent
        self._active: list[Work] = []
        # Ended parts of a composite are folded into counters so that a loop opening a scope
        # per item keeps memory flat.
        self._ended_known = 0
        self._ended_known_units = 0.0
        self._ended_known_done = 0.0
        self._ended_positive = 0  # ended parts with units > 0: they set the mean
        self._ended_unknown = 0
        self._ended_unknown_done = 0.0  # in parts: fractions of the mean weight

    def add(self, *, total: float | None = None, composite: bool = False,
            expected: int = 0) -> Work:
        """Start a part (of a composite) or a nested scope (of a scope)."""
        child = Work(total=total, composite=composite, expected=expected, parent=self)
        self._active.append(child)
        return child

    def finish(self, *, abandoned: bool = False) -> None:
        """End this work; a composite parent keeps its weight, a scope parent drops it.

        Abandoned work (cancelled) keeps only the progress it made: stopping is not finishing,
        and the bar must not leap forward when a run is cancelled.
        """
        if self.ended:
            return
        done = (self.fraction() or 0.0) if abandoned else 1.0
        self.ended = True
        parent = self.parent
        if parent is None:
            return
        parent._active.remove(self)
        if parent.composite:
            units = self.units()
            if units is None:
                parent._ended_unknown += 1
                parent._ended_unknown_done += done
            else:
                parent._ended_known += 1
                parent._ended_positive += units > 0
                parent._ended_known_units += units
                parent._ended_known_done += units * done

    def set_fraction(self, fraction: float) -> None:
        """Record progress given as a fraction (an explicit percentage)."""
        fraction = min(1.0, max(0.0, fraction))
        if self.total is not None:
            self.done = fraction * self.total
        else:
            self.hint = fraction

    # -- measures ---------------------------------------------------------------------------

    def _parts(self) -> tuple[float, float, int, int]:
        """(weight sum, weighted done, parts count, known count) of a composite."""
        known_units = self._ended_known_units
        known = self._ended_known
        positive = self._ended_positive
        measured: list[tuple[float | None, float | None]] = []
        for part in self._active:
            units = part.units()
            if units is not None:
                known_units += units
                known += 1
                positive += units > 0
            measured.append((units, part.fraction()))
        count = self._ended_known + self._ended_unknown + len(self._active)
        placeholders = max(0, self.expected - count)
        count += placeholders
        mean = known_units / positive if positive else 1.0
        weight = self._ended_known_units + (self._ended_unknown + placeholders) * mean
        done = self._ended_known_done + self._ended_unknown_done * mean
        for units, fraction in measured:
            w = mean if units is None else units
            weight += w
            done += w * (fraction or 0.0)
        return weight, done, count, known

    def units(self) -> float | None:
        """Declared work, in the units of its sources; None when nothing is measurable."""
        if not self.composite:
            return self.total
        weight, _, count, known = self._parts()
        return weight if known or count >= 2 else None

    def fraction(self) -> float | None:
        """How much is done, in 0..1; None when not measurable."""
        if self.ended:
            return 1.0
        if self.composite:
            weight, done, count, known = self._parts()
            if not known and count < 2:
                return self._active[0].fraction() if count == 1 and self._active else None
            return min(1.0, done / weight) if weight > 0 else 0.0
        if self.total is None:
            return self.hint
        if self.total <= 0:
            return 1.0
        done = self.done
        for nested in self._active:
            done += nested.fraction() or 0.0
        return min(1.0, max(0.0, done / self.total))


class StreamError(RuntimeError):
    """A caller broke the begin/report/end order (a bug in FineCode, never a child's fault)."""


class Stream:
    """What one progress token shows a client: exactly one begin, reports, exactly one end.

    Whether there is a percentage is decided at `begin`; from then on the shown value never goes
    back (a late total that lowers the true fraction holds the bar until the truth passes it),
    and 100 appears only when the caller says the work is complete.
    """

    __slots__ = ("_last", "cancellable", "determinate", "shown", "state", "title")

    def __init__(self, title: str, *, cancellable: bool = False) -> None:
        self.title = title
        self.cancellable = cancellable
        self.state = "idle"
        self.determinate = False
        self.shown: int | None = None
        self._last: tuple[int | None, str | None, Value | None] = (None, None, None)

    def _percentage(self, fraction: float | None, complete: bool) -> int | None:
        if not self.determinate:
            return None
        value = 100 if complete else min(99, math.floor((fraction or 0.0) * 100))
        return max(value, self.shown or 0)

    def begin(self, *, determinate: bool, fraction: float | None = None,
              message: str | None = None, extra: Value | None = None) -> Value:
        """The begin value; `extra` fields ride along (the runner's work units)."""
        if self.state != "idle":
            raise StreamError(f"begin in state {self.state}")
        self.state = "active"
        self.determinate = determinate
        self.shown = self._percentage(fraction, False)
        self._last = (self.shown, message, extra)
        value: Value = {**(extra or {}), "kind": "begin", "title": self.title,
                        "cancellable": self.cancellable}
        if message is not None:
            value["message"] = message
        if self.shown is not None:
            value["percentage"] = self.shown
        return value

    def report(self, *, fraction: float | None, message: str | None = None,
               complete: bool = False, extra: Value | None = None) -> Value | None:
        """The next report, or None when it would show nothing new."""
        if self.state != "active":
            raise StreamError(f"report in state {self.state}")
        percentage = self._percentage(fraction, complete)
        if (percentage, message, extra) == self._last:
            return None
        self._last = (percentage, message, extra)
        self.shown = percentage
        value: Value = {**(extra or {}), "kind": "report"}
        if message is not None:
            value["message"] = message
        if percentage is not None:
            value["percentage"] = percentage
        return value

    def end(self, message: str | None = None) -> Value:
        if self.state != "active":
            raise StreamError(f"end in state {self.state}")
        self.state = "ended"
        value: Value = {"kind": "end"}
        if message is not None:
            value["message"] = message
        return value
