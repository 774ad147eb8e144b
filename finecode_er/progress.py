"""Folding many progress sources into one honest stream.

Pure state machines, no I/O and no clock: the runner uses them to combine a handler's
scopes into one stream per action execution, and the workspace manager uses the very same
`Scope` one level up for each child execution, and `Stream` for the editor's stream.

- A tree of work: a `Composite` is the weighted sum of its parts (the handlers of an action,
  the scopes of one handler); a `Scope` has declared steps (`total`, `done`) and its nested
  scopes subdivide the step in hand. `Work` is either.
- `Stream` turns fractions into the LSP begin/report/end values a client sees, keeping the
  rules: one begin, percentage decided at begin, never decreasing, 100 only when complete,
  one end.
- `FractionStream` is what a delegating runner is told about its delegated work: the fraction
  itself (no rounding, no begin rule) and the narrative.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Composite", "FractionStream", "Scope", "Stream", "StreamError", "Work"]

Value = dict[str, Any]


class Scope:
    """Work with declared steps (`total`, `done`), or a fraction reported directly (`hint`).

    Nested scopes subdivide the step in hand: while one is open its fraction is added to `done`;
    when it ends its share leaves, and the scope's own `done` is expected to advance instead.
    A total of 0 is work already done.
    """

    __slots__ = ("_nested", "done", "ended", "hint", "parent", "total")

    def __init__(self, total: float | None = None, parent: Composite | Scope | None = None) -> None:
        self.total = total
        self.done = 0.0
        self.hint: float | None = None  # a fraction reported directly, for work without total
        self.ended = False
        self.parent = parent
        self._nested: list[Scope | Composite] = []

    def add(self, *, total: float | None = None) -> Scope:
        """Open a nested scope within the step in hand."""
        nested = Scope(total, self)
        self._nested.append(nested)
        return nested

    def finish(self, *, abandoned: bool = False) -> None:
        """End this work. Abandoned (cancelled) work keeps only the progress it made."""
        _finish(self, abandoned)

    def part_ended(self, part: Scope | Composite, kept: float) -> None:
        """A nested scope ended: its share leaves until this scope advances."""
        self._nested.remove(part)

    def set_fraction(self, fraction: float) -> None:
        """Record progress given as a fraction (an explicit percentage)."""
        fraction = min(1.0, max(0.0, fraction))
        if self.total is not None:
            self.done = fraction * self.total
        else:
            self.hint = fraction

    def units(self) -> float | None:
        """Declared work, in the units of its source; None when not declared."""
        return self.total

    def fraction(self) -> float | None:
        """How much is done, in 0..1; None when not measurable."""
        if self.ended:
            return 1.0
        if self.total is None:
            return self.hint
        if self.total <= 0:
            return 1.0
        done = self.done
        for nested in self._nested:
            done += nested.fraction() or 0.0
        return min(1.0, max(0.0, done / self.total))


class Composite:
    """The weighted sum of its parts: the handlers of an action, the scopes of one handler.

    A part weighs its declared units; a part whose units are not known (yet) weighs the mean of
    the known positive ones (1 when none is known), so that the count of parts is the measure
    until totals arrive and declared totals refine it as they do. A total of 0 is work already
    done: it weighs nothing and never drags that mean down. `expected` parts not added yet
    count as unknown ones.
    """

    __slots__ = (
        "_active",
        "_ended_known",
        "_ended_known_done",
        "_ended_known_units",
        "_ended_positive",
        "_ended_unknown",
        "_ended_unknown_done",
        "ended",
        "expected",
        "parent",
    )

    def __init__(self, expected: int = 0, parent: Composite | None = None) -> None:
        self.expected = expected
        self.ended = False
        self.parent = parent
        self._active: list[Scope | Composite] = []
        # Ended parts are folded into counters so that a loop opening a scope per item keeps
        # memory flat.
        self._ended_known = 0
        self._ended_known_units = 0.0
        self._ended_known_done = 0.0
        self._ended_positive = 0  # ended parts with units > 0: they set the mean
        self._ended_unknown = 0
        self._ended_unknown_done = 0.0  # in parts: fractions of the mean weight

    def add(self, *, total: float | None = None) -> Scope:
        """Start a part with declared steps."""
        part = Scope(total, self)
        self._active.append(part)
        return part

    def add_composite(self, *, expected: int = 0) -> Composite:
        """Start a part that is itself a sum of parts (one handler's scopes)."""
        part = Composite(expected, self)
        self._active.append(part)
        return part

    def finish(self, *, abandoned: bool = False) -> None:
        """End this work. Abandoned (cancelled) work keeps only the progress it made."""
        _finish(self, abandoned)

    def part_ended(self, part: Scope | Composite, kept: float) -> None:
        """A part ended: it keeps its weight, with `kept` of it done."""
        self._active.remove(part)
        units = part.units()
        if units is None:
            self._ended_unknown += 1
            self._ended_unknown_done += kept
        else:
            self._ended_known += 1
            self._ended_positive += units > 0
            self._ended_known_units += units
            self._ended_known_done += units * kept

    def _parts(self) -> tuple[float, float, int, int]:
        """(weight sum, weighted done, parts count, known count)."""
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
        weight, _, count, known = self._parts()
        return weight if known or count >= 2 else None

    def fraction(self) -> float | None:
        """How much is done, in 0..1; None when not measurable."""
        if self.ended:
            return 1.0
        weight, done, count, known = self._parts()
        if not known and count < 2:
            return self._active[0].fraction() if count == 1 and self._active else None
        return min(1.0, done / weight) if weight > 0 else 0.0


Work = Scope | Composite  # any node of the tree


def _finish(node: Work, abandoned: bool) -> None:
    """End a node once; its parent learns how much of it was done (all, unless abandoned)."""
    if node.ended:
        return
    kept = (node.fraction() or 0.0) if abandoned else 1.0
    node.ended = True
    if node.parent is not None:
        node.parent.part_ended(node, kept)


class StreamError(RuntimeError):
    """A caller broke the begin/report/end order (a bug in FineCode, never a child's fault)."""


class Stream:
    """What one progress token shows a client: exactly one begin, reports, exactly one end.

    Whether there is a percentage is decided at `begin` (VS Code ignores a later switch); with
    `late`, for a consumer that takes one (the terminal), a stream that began without a
    percentage gets one once there is a fraction. From then on the shown value never goes back
    (a late total that lowers the true fraction holds the bar until the truth passes it), and
    100 appears only when the caller says the work is complete.
    """

    __slots__ = ("_last", "cancellable", "determinate", "late", "shown", "state", "title")

    def __init__(self, title: str, cancellable: bool = False, *, late: bool = False) -> None:
        self.title = title
        self.cancellable = cancellable
        self.late = late
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
        if self.late and fraction is not None:
            self.determinate = True
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


class FractionStream:
    """What the WM tells a delegating runner about the work it delegated with `progress=scope`.

    Values are `{"kind": "fraction", "fraction"?: float in 0..1, "message"?: str}`. Unlike a
    client's `Stream` there is no rounding and no begin rule: the consumer is the runner, which
    takes the fraction whenever it appears (a single child that declares its total late, or
    begins after a cold start, is measurable from then on). The fraction never goes back (a late
    total holds it until the truth passes it) and is 1 when the work is complete. There is no
    end value: the answer to the delegation ends it.
    """

    __slots__ = ("_last", "determinate", "shown", "state")

    def __init__(self, title: str = "", cancellable: bool = False) -> None:
        self.state = "idle"
        self.determinate = False  # there is no percentage decided at begin
        self.shown: float | None = None
        self._last: Value | None = None

    def begin(self, *, determinate: bool = False, fraction: float | None = None,
              message: str | None = None, extra: Value | None = None) -> Value:
        if self.state != "idle":
            raise StreamError(f"begin in state {self.state}")
        self.state = "active"
        value = self._value(fraction, message, complete=False)
        self._last = value
        return value

    def report(self, *, fraction: float | None, message: str | None = None,
               complete: bool = False, extra: Value | None = None) -> Value | None:
        """The next value, or None when it would say nothing new."""
        if self.state != "active":
            raise StreamError(f"report in state {self.state}")
        value = self._value(fraction, message, complete=complete)
        if value == self._last:
            return None
        self._last = value
        return value

    def end(self, message: str | None = None) -> None:
        if self.state != "active":
            raise StreamError(f"end in state {self.state}")
        self.state = "ended"

    def _value(self, fraction: float | None, message: str | None, *, complete: bool) -> Value:
        if complete:
            fraction = 1.0
        if fraction is not None and math.isfinite(fraction):
            fraction = round(min(1.0, max(0.0, fraction)), 6)
            self.shown = fraction if self.shown is None else max(self.shown, fraction)
        value: Value = {"kind": "fraction"}
        if self.shown is not None:
            value["fraction"] = self.shown
        if message is not None:
            value["message"] = message
        return value
