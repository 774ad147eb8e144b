"""The WM's aggregation of child executions into one editor stream (pure: no I/O, no clock).

Each child execution (project × action) reports on its own internal token; `BatchProgress`
checks every child value (a misbehaving child cannot break the editor's rules: bad values are
dropped and described), keeps each child's own `Scope`, weighs the children into one fraction,
and words the narrative (`3/12 · lint · pkg-a: utils.py`; one child: `lint · pkg-a: utils.py`),
the stall notice, the estimate of the time left and the outcome (`11 ok, 1 failed`). Every
time-dependent answer takes `now`.

Weighting (docs/progress.md):
- within one action, children weigh their declared units; a child whose units are not known yet
  weighs the mean of the known positive ones (1 when none is known); a total of 0 weighs nothing
  and counts as done, so it never holds the bar back;
- across actions, each action weighs by its number of children (files of `lint` are not bytes
  of `stats`);
- when the expected seconds of every child are known from earlier runs (`Timing`), each child
  weighs its expected seconds instead, so the percentage tracks time; but history never puts
  the bar more than `HISTORY_MARGIN` above the counted fraction (the rules above): where they
  disagree that strongly, counted work wins;
- a child whose result came from the result cache weighs nothing anywhere (it is counted in
  `N/M`, and the rest of the bar is the work that runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from finecode_er.streams import Reading, read_value
from finecode_er.work import Scope

from .results import Status, counts_text

__all__ = ["HISTORY_MARGIN", "BatchProgress", "Child", "Headline", "Row", "Timing",
           "describe_seconds_left"]

MAX_MESSAGE = 200
STALL_AFTER = 5.0  # seconds a running child may stay silent before the message names it
ESTIMATE_AFTER = 3.0  # seconds into the batch before an estimate of the time left is shown
ESTIMATE_MIN_FRACTION = 0.02  # below this, elapsed/fraction says nothing useful
HISTORY_MARGIN = 0.10  # history may put the bar at most this far above the counted fraction
OVERRUN_GRACE = 1.0  # seconds a child without a fraction may run past its expected time
PAUSED = "estimate paused"


@dataclass(frozen=True)
class Timing:
    """How long an earlier run of a child took (`seconds`) and the units it declared (`total`,
    None when it declared none)."""

    seconds: float
    total: float | None = None

    def for_total(self, total: float | None) -> float | None:
        """Expected seconds of a run that declares `total` units: the recorded time scaled per
        unit. None when there is no basis: the recorded run had no work and this one has."""
        if total is None or self.total is None or total == self.total:
            return self.seconds
        return self.seconds * total / self.total if self.total > 0 else None


@dataclass(eq=False)
class Child:
    """One child execution as the aggregation sees it."""

    project: str
    action: str
    work: Scope = field(default_factory=Scope)
    timing: Timing | None = None  # from an earlier run with the same signature
    state: str = "waiting"  # of its stream: waiting → active → ended
    message: str | None = None
    status: Status | None = None  # once it has finished
    starting: bool = False  # waiting for its runner to start (set by the batch)
    running_since: float | None = None  # when it got its runner
    heard: float | None = None  # when it last said anything (or got its runner)
    kept: float = 1.0  # the fraction a finished child keeps: less than 1 once cancelled
    cached: bool = False  # its result came from the result cache: done at once, weighs nothing

    @property
    def running(self) -> bool:
        return self.running_since is not None and self.status is None

    @property
    def expected(self) -> float | None:
        """Seconds this run should take, from history scaled to the units it declares now."""
        return None if self.timing is None else self.timing.for_total(self.work.total)

    def fraction(self) -> float | None:
        """Its own progress in 0..1 (a total of 0 is done); None when it reported none."""
        return self.kept if self.status is not None else self.work.fraction()

    def quiet(self, now: float) -> float | None:
        """Seconds it has been silent while running, once that reaches `STALL_AFTER`."""
        if not self.running or self.heard is None or now - self.heard < STALL_AFTER:
            return None
        return now - self.heard


@dataclass(frozen=True)
class Row:
    """A running child as a live display shows it."""

    project: str
    action: str
    fraction: float | None
    message: str | None
    quiet: float | None  # seconds without progress, once stalled
    ran: float  # seconds it has been running


@dataclass(frozen=True)
class Headline:
    """The batch's narrative in parts, for a display that lays them out itself: the count
    (`3/12`), the stalled child (`pkg-a · lint`, empty when none) and how long it has been
    silent, and the rest of the words. `str()` is the message an editor gets."""

    count: str
    quiet: float | None
    waiting: str
    text: str

    def __str__(self) -> str:
        stall = (f"waiting on {self.waiting} ({math.floor(self.quiet or 0.0)} s without "
                 "progress)") if self.waiting else ""
        return " · ".join(part for part in (self.count, stall, self.text) if part)


def describe_seconds_left(seconds: float) -> str:
    """`~40 s left`, `~3 min left`, `~2 h left`; `estimate paused` for `math.inf`."""
    if math.isinf(seconds):
        return PAUSED
    if seconds < 90:
        return f"~{max(1, round(seconds))} s left"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min left"
    return f"~{round(seconds / 3600)} h left"


def _action_fraction(children: Sequence[Child]) -> float:
    """Units-weighted fraction of the children of one action (see the module docstring)."""
    known = [c.work.total for c in children if c.work.total]
    mean = sum(known) / len(known) if known else 1.0
    weight = done = 0.0
    for child in children:
        if child.cached:
            continue
        w = mean if child.work.total is None else child.work.total
        weight += w
        done += w * (child.fraction() or 0.0)
    return min(1.0, done / weight) if weight > 0 else 1.0


class BatchProgress:
    """Folds the children's streams; decides what is measurable and what the narrative says."""

    def __init__(self, children: list[tuple[str, str]],
                 timings: Sequence[Timing | None] | None = None, *, lanes: int = 1) -> None:
        """`timings`: per child from history; `lanes`: children that run at once."""
        known = list(timings) if timings is not None else [None] * len(children)
        self.children = [Child(p, a, timing=t) for (p, a), t in zip(children, known, strict=True)]
        self.actions: dict[str, list[Child]] = {}
        for child in self.children:
            self.actions.setdefault(child.action, []).append(child)
        self.lanes = max(1, lanes)
        self.current: Child | None = None
        self.finished = 0
        self.dropped = 0
        self.started: float | None = None  # when the batch started (set by its runner)

    # -- measures ---------------------------------------------------------------------------

    def measurable(self) -> bool:
        """Rule 4: two or more children are measured by their count; one by its declared total."""
        if len(self.children) != 1:
            return len(self.children) >= 2
        return self.children[0].work.total is not None

    @property
    def timed(self) -> bool:
        """Every child has an expected time (its history matches the units it declares now)."""
        return bool(self.children) and all(c.expected is not None for c in self.children
                                           if not c.cached)

    def fraction(self) -> float | None:
        """The batch's true fraction in 0..1; None when nothing is measurable.

        Weighed by time when `timed`, but never more than `HISTORY_MARGIN` above the counted
        fraction: stale or wrong history cannot run ahead of the work actually counted.
        """
        if not self.measurable():
            return self.children[0].fraction() if self.children else None
        counted = self.counted_fraction()
        if not self.timed:
            return counted
        weights = [0.0 if c.cached else max(c.expected or 0.0, 1e-3) for c in self.children]
        done = sum(w * (c.fraction() or 0.0) for w, c in zip(weights, self.children, strict=True))
        if not any(weights):
            return 1.0
        return min(1.0, done / sum(weights), counted + HISTORY_MARGIN)

    def counted_fraction(self) -> float:
        """The fraction by counted work alone: units within an action, children across."""
        ran = {action: sum(not c.cached for c in group) for action, group in self.actions.items()}
        total = sum(ran.values())
        if not total:
            return 1.0
        return min(1.0, sum(ran[action] / total * _action_fraction(group)
                            for action, group in self.actions.items()))

    def estimate(self, now: float) -> float | None:
        """Seconds left, once measurable and `ESTIMATE_AFTER` in; None when there is no basis.

        From history: what each unfinished child still has to do of its expected time (or of
        the time its own pace gives, when it runs slower), spread over the lanes (never less
        than the longest single remainder). Else: elapsed time and fraction done.

        `math.inf` means paused: a running child is stalled (nothing says when it resumes), or
        one has outrun its expected time with no fraction to measure it by. So while a stall
        lasts the estimate is withdrawn, never frozen nor shrinking.
        """
        if (self.started is None or now - self.started < ESTIMATE_AFTER
                or self.finished == len(self.children)):
            return None
        fraction = self.fraction()
        if fraction is None or fraction >= 1.0 or not self.measurable():
            return None
        if self.timed:
            rests = [self._rest(c, now) for c in self.children if c.status is None]
            if not rests:
                return None
            known = [r for r in rests if r is not None]
            left = (max(sum(known) / min(self.lanes, len(known)), max(known))
                    if len(known) == len(rests) else math.inf)
        elif fraction < ESTIMATE_MIN_FRACTION:
            return None
        else:
            left = (now - self.started) * (1 - fraction) / fraction
        return math.inf if self.stalled(now) is not None else left

    @staticmethod
    def _rest(child: Child, now: float) -> float | None:
        """Seconds an unfinished child still needs; None once it has outrun its expected time
        (by `OVERRUN_GRACE`, so quick children do not flicker) without a fraction to tell how
        far it is."""
        expected = child.expected or 0.0
        ran = now - child.running_since if child.running_since is not None else 0.0
        own = child.fraction()
        if own is not None and own > 0:
            return (1 - own) * max(expected, ran / own)  # its own pace, when slower than history
        return max(0.0, expected - ran) if ran < expected + OVERRUN_GRACE else None

    # -- child values -----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """The batch started (the estimate of the time left counts from here)."""
        self.started = now

    def waiting_for_runner(self, child: Child) -> None:
        """The child waits for a runner to start (said as `starting runners`), not merely for a
        free slot or a warm runner."""
        child.starting = True

    def running(self, child: Child, now: float) -> None:
        """The child got its runner and its request is on the way."""
        child.starting = False
        child.running_since = child.heard = now

    def fold(self, child: Child, value: Any, now: float) -> str | None:
        """Apply one child `$/progress` value; returns why (part of) it was dropped, if it was."""
        child.heard = now
        problem = self._fold(child, value)
        if problem is not None:
            self.dropped += 1
        return problem

    def _fold(self, child: Child, value: Any) -> str | None:
        reading = read_value(value)
        kind = reading.kind
        if kind not in ("begin", "report", "end"):
            return f"not a progress value: {str(value)[:80]}"
        if child.status is not None:
            return f"{kind} after the execution finished"
        if kind == "begin":
            if child.state != "waiting":
                return "second begin"
            child.state = "active"
        elif child.state != "active":
            return f"{kind} before begin" if child.state == "waiting" else f"{kind} after end"
        if kind == "end":
            child.state = "ended"
            return None
        if reading.message is not None:
            child.message = reading.message[:MAX_MESSAGE]
            self.current = child
        problems = self._fold_fields(child.work, reading)
        return "; ".join(problems) or None

    @staticmethod
    def _fold_fields(work: Scope, reading: Reading) -> list[str]:
        """The child's declared units (or its percentage, when it declares none); what was
        dropped, in the order of the fields (message, total, done, percentage)."""
        dropped = reading.problems
        problems = [dropped[f] for f in ("message", "total", "done") if f in dropped] \
            if dropped else []
        if reading.total is not None:
            work.set_total(reading.total)
        done = reading.done
        if done is not None and done < work.done:
            problems.append(f"done went back ({work.done:g} → {done:g})")
        elif done is not None:
            work.set_done(done)
        if work.total is None:  # percentages only count for a child without units
            percentage = reading.percentage
            if "percentage" in dropped:
                problems.append(dropped["percentage"])
            elif percentage is not None and work.hint is not None and \
                    percentage / 100 < work.hint:
                problems.append("percentage went back")
            elif percentage is not None:
                work.set_fraction(percentage / 100)
        return problems

    def finish(self, child: Child, status: Status) -> None:
        """The child's execution is over (its answer arrived, it failed, or was cancelled).

        A cancelled child keeps only the progress it made: stopping is not finishing, and the
        bar must not leap forward when a run is cancelled.
        """
        if child.status is not None:
            return
        child.kept = (child.work.fraction() or 0.0) if status == "cancelled" else 1.0
        child.status = status
        child.starting = False
        self.finished += 1

    # -- words ------------------------------------------------------------------------------

    def stalled(self, now: float) -> Child | None:
        """The running child that has been silent longest, once that is `STALL_AFTER` or more."""
        quiet = [(q, i) for i, c in enumerate(self.children) if (q := c.quiet(now)) is not None]
        return self.children[max(quiet)[1]] if quiet else None

    def starting(self) -> bool:
        """Some child is waiting for its runner to start (not merely for a free slot)."""
        return any(c.starting and c.status is None for c in self.children)

    def narrative(self, now: float, *, estimate: bool = False) -> str:
        """The message of the next value; `estimate` only on a stream with a percentage."""
        return str(self.headline(now, estimate=estimate))

    def headline(self, now: float, *, estimate: bool = False) -> Headline:
        """The narrative in parts (see `Headline`)."""
        done = self.finished - sum(c.status == "cancelled" for c in self.children)
        # cancelled children are not done; a batch of one child, or of none (only broken
        # configs), shows no count (`0/1` and `0/0` say nothing)
        count = f"{done}/{len(self.children)}" if len(self.children) > 1 else ""
        stalled = self.stalled(now)
        parts = []
        if stalled is None and (active := self._active_text()) is not None:
            parts.append(active)
        if self.starting():
            parts.append("starting runners")
        left = self.estimate(now) if estimate else None
        if left is not None:
            parts.append(describe_seconds_left(left))
        if stalled is None:
            return Headline(count, None, "", " · ".join(parts))
        return Headline(count, stalled.quiet(now), f"{stalled.project} · {stalled.action}",
                        " · ".join(parts))

    def _active_text(self) -> str | None:
        child = self.current
        if child is None or child.status is not None:
            child = next((c for c in self.children if c.state == "active" and c.status is None),
                         None)
        if child is None:
            return None
        text = f"{child.action} · {child.project}"
        return f"{text}: {child.message}" if child.message else text

    def rows(self, now: float) -> list[Row]:
        """The running children, for a live display."""
        return [Row(c.project, c.action, c.fraction(), c.message, c.quiet(now),
                    now - (c.running_since or now)) for c in self.children if c.running]

    def outcome(self, *, cancelled: bool = False) -> str:
        words = counts_text((c.status for c in self.children if c.status is not None),
                            sum(c.cached for c in self.children)) or "nothing to run"
        return f"cancelled: {words}" if cancelled else words
