"""The batch's aggregated stream as MCP `notifications/progress` values (pure: no I/O, no clock).

MCP progress has no begin or end, only `progress` (must strictly increase), an optional `total`
and a `message`. `ProgressMapping` turns the LSP-shaped begin/report/end values that a `Batch`
emits (already paced and honest) into those, keeping what the stream promised:

- Determinate (the begin carried a percentage): `total` is 100 and `progress` the percentage.
  A value that changes only the message moves `progress` a tenth of the way towards the next
  whole percent, so it still increases without claiming work that was not done.
- Indeterminate: no `total`; `progress` counts the notifications (1, 2, 3, …).
- `progress == total` only at the end of a complete run. The stream reports 100% only when
  every child finished, so that report is held back and sent once, with the end's outcome
  message; a run that ends below 100% (cancelled, stopped at a failure) ends below `total`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from finecode_er.streams import read_value

__all__ = ["TOTAL", "Progress", "ProgressMapping"]

TOTAL = 100.0
STEP = 0.1  # a message-only update covers this share of the gap to the next whole percent


@dataclass(frozen=True)
class Progress:
    """One `notifications/progress` payload (without the token)."""

    progress: float
    total: float | None
    message: str | None


class ProgressMapping:
    """Maps one stream's values, in order, to progress notifications (None: send nothing)."""

    def __init__(self) -> None:
        self.determinate: bool | None = None  # decided by the begin, as in the stream
        self.last: float | None = None
        self.ended = False
        self._complete = False  # the stream reached 100%: only the end may show it

    def map(self, value: Any) -> Progress | None:
        reading = read_value(value)
        kind = reading.kind
        if kind is None or self.ended:
            return None
        if kind == "begin" and self.determinate is None:
            self.determinate = reading.percentage is not None
        elif kind not in ("report", "end") or self.determinate is None:
            return None
        message = reading.message
        if kind == "end":
            self.ended = True
            if self.determinate and self._complete:
                return self._send(TOTAL, message)
        elif kind == "report" and self.determinate and reading.percentage == TOTAL:
            self._complete = True
            return None
        if self._complete:
            return None  # nothing may follow 100% except the end
        return self._send(self._next(reading.percentage), message)

    def _next(self, percentage: float | None) -> float | None:
        last = self.last
        if not self.determinate:
            return 1.0 if last is None else last + 1.0
        if last is None:
            return min(percentage or 0.0, TOTAL - 1)
        if percentage is not None and last < percentage < TOTAL:
            return percentage
        ceiling = min(math.floor(last) + 1.0, TOTAL)
        step = last + (ceiling - last) * STEP
        return step if last < step < ceiling else None  # None: no room left below the ceiling

    def _send(self, progress: float | None, message: str | None) -> Progress | None:
        if progress is None:
            return None
        self.last = progress
        return Progress(progress, TOTAL if self.determinate else None, message)

