"""The shapes of a progress stream: the values a consumer sees, keeping the rules (pure: no I/O,
no clock).

- `Stream` turns fractions into the LSP begin/report/end values a client sees: one begin,
  percentage decided at begin, never decreasing, 100 only when complete, one end.
- `FractionStream` is what a delegating runner is told about its delegated work: the fraction
  itself (no rounding, no begin rule) and the narrative.
- `Value` is what both send, typed once; `read_value` is the one place a value that comes from
  another process (a runner's, the WM's) is checked, field by field, into a `Reading`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Required, TypedDict

__all__ = ["KINDS", "FractionStream", "Reading", "Stream", "StreamError", "Units", "Value",
           "non_negative", "read_value"]

Kind = Literal["begin", "report", "end", "fraction"]
KINDS: tuple[Kind, ...] = ("begin", "report", "end", "fraction")


class Units(TypedDict, total=False):
    """The work units a runner sends with begin and reports (what the WM weighs children by)."""

    total: float
    done: float


class Value(TypedDict, total=False):
    """One `$/progress` value as FineCode sends it: LSP's begin, report and end (from a runner,
    with its `Units`), or a delegated batch's `fraction` (to the delegating runner)."""

    kind: Required[Kind]
    title: str
    cancellable: bool
    message: str
    percentage: int
    total: float
    done: float
    fraction: float


class Reading(NamedTuple):
    """A `$/progress` value from another process, checked: each field usable (or None), and
    why each unusable one was dropped (`problems`: field → words for the log). `kind` is None
    when the value is no progress value at all."""

    kind: Kind | None
    title: str | None = None
    message: str | None = None
    percentage: float | None = None  # a number in 0..100
    fraction: float | None = None  # a finite number (the consumer clamps it to 0..1)
    total: float | None = None
    done: float | None = None
    problems: Mapping[str, str] = MappingProxyType({})


_NOT_A_VALUE = Reading(None)
_NO_PROBLEMS = _NOT_A_VALUE.problems


def non_negative(value: Any) -> float | None:
    """A finite, non-negative number, else None."""
    # A tuple is faster than a union here, and this runs for every value of every child.
    if value.__class__ is bool or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 and math.isfinite(value) else None


def read_value(raw: Any) -> Reading:
    """Check a `$/progress` value field by field (what a consumer uses of it is its own rule).

    On the WM's hot path (every child value of every runner): no work for absent fields, and
    no allocation but the reading itself while the value is good.
    """
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind not in KINDS:
        return _NOT_A_VALUE
    problems: dict[str, str] | None = None
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        problems = {"message": "message is not a string"}
        message = None
    title = raw.get("title")
    total = done = percentage = fraction = None
    if "total" in raw and (total := non_negative(raw["total"])) is None:
        problems = _dropped(problems, raw, "total")
    if "done" in raw and (done := non_negative(raw["done"])) is None:
        problems = _dropped(problems, raw, "done")
    if "percentage" in raw:
        percentage = non_negative(raw["percentage"])
        if percentage is None or percentage > 100:
            percentage = None
            problems = _dropped(problems, raw, "percentage")
    if "fraction" in raw:
        value = raw["fraction"]
        if value.__class__ is not bool and isinstance(value, (int, float)) and \
                math.isfinite(value):
            fraction = float(value)
        else:
            problems = _dropped(problems, raw, "fraction")
    return Reading(kind, title if isinstance(title, str) else None, message, percentage,
                   fraction, total, done, _NO_PROBLEMS if problems is None else problems)


def _dropped(problems: dict[str, str] | None, raw: dict[str, Any],
             field: str) -> dict[str, str]:
    problems = {} if problems is None else problems
    problems[field] = f"bad {field} {raw[field]!r}"
    return problems


def _add_units(value: Value, units: Units | None) -> None:
    if units:
        if "total" in units:
            value["total"] = units["total"]
        if "done" in units:
            value["done"] = units["done"]


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
        self._last: tuple[int | None, str | None, Units | None] = (None, None, None)

    def _percentage(self, fraction: float | None, complete: bool) -> int | None:
        if not self.determinate:
            return None
        value = 100 if complete else min(99, math.floor((fraction or 0.0) * 100))
        return max(value, self.shown or 0)

    def begin(self, *, determinate: bool, fraction: float | None = None,
              message: str | None = None, extra: Units | None = None) -> Value:
        """The begin value; `extra` fields ride along (the runner's work units)."""
        if self.state != "idle":
            raise StreamError(f"begin in state {self.state}")
        self.state = "active"
        self.determinate = determinate
        self.shown = self._percentage(fraction, False)
        self._last = (self.shown, message, extra)
        value: Value = {"kind": "begin", "title": self.title, "cancellable": self.cancellable}
        _add_units(value, extra)
        if message is not None:
            value["message"] = message
        if self.shown is not None:
            value["percentage"] = self.shown
        return value

    def report(self, *, fraction: float | None, message: str | None = None,
               complete: bool = False, extra: Units | None = None) -> Value | None:
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
        value: Value = {"kind": "report"}
        _add_units(value, extra)
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
              message: str | None = None, extra: Units | None = None) -> Value:
        if self.state != "idle":
            raise StreamError(f"begin in state {self.state}")
        self.state = "active"
        value = self._value(fraction, message, complete=False)
        self._last = value
        return value

    def report(self, *, fraction: float | None, message: str | None = None,
               complete: bool = False, extra: Units | None = None) -> Value | None:
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
