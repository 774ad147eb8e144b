"""The WM's pure aggregation (`finecode_wm.aggregation`): weighting, stall notice, estimate,
history."""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_er.streams import Stream
from finecode_er.work import Composite
from finecode_wm.aggregation import (
    HISTORY_MARGIN,
    BatchProgress,
    Child,
    Timing,
    describe_seconds_left,
)
from finecode_wm.history import History, load, save, signature

from .rules import check_stream

pytestmark = pytest.mark.timeout(120)


def begin(progress: BatchProgress, child: Child, total: float | None, now: float = 0.0) -> None:
    value: dict[str, Any] = {"kind": "begin", "title": "t"}
    if total is not None:
        value |= {"total": total, "done": 0}
    progress.running(child, now)
    assert progress.fold(child, value, now) is None


def report(progress: BatchProgress, child: Child, now: float = 0.0, **fields: Any) -> None:
    progress.fold(child, {"kind": "report", **fields}, now)


class Shown:
    """A Stream fed from a BatchProgress, the way the batch's paced stream feeds it."""

    def __init__(self, progress: BatchProgress) -> None:
        self.progress = progress
        self.stream = Stream("t")
        self.values = [self.stream.begin(determinate=progress.measurable(),
                                         fraction=progress.fraction())]

    def report(self, now: float = 0.0) -> None:
        message = self.progress.narrative(now, estimate=self.stream.determinate)
        value = self.stream.report(fraction=self.progress.fraction(), message=message)
        if value is not None:
            self.values.append(value)

    def end(self, complete: bool) -> list[int]:
        value = self.stream.report(fraction=self.progress.fraction(), complete=complete)
        if value is not None:
            self.values.append(value)
        self.values.append(self.stream.end("done"))
        return check_stream(self.values)

    def percentages(self) -> list[int]:
        return [v["percentage"] for v in self.values if "percentage" in v]


# -- weighting --------------------------------------------------------------------------------

others_totals = st.lists(st.one_of(st.none(), st.integers(1, 100)), min_size=2, max_size=5)
other_ops = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["advance", "total", "finish",
                                                                   "cancel", "zero_finish"]),
                               st.integers(0, 60)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(others_totals, st.integers(1, 3), st.data(), other_ops)
def test_zero_total_children_never_change_the_shown_values_of_the_others(
        totals: list[int | None], zeros: int, data: st.DataObject,
        script: list[tuple[int, str, int]]) -> None:
    slots = data.draw(st.lists(st.integers(0, len(totals)), min_size=zeros, max_size=zeros))
    names = [f"p{i}" for i in range(len(totals))]
    mixed = list(names)
    for n, slot in enumerate(slots):
        mixed.insert(slot, f"zero{n}")
    alone = BatchProgress([(name, "lint") for name in names])
    beside = BatchProgress([(name, "lint") for name in mixed])
    by_name = {c.project: c for c in beside.children}
    for progress in (alone, beside):
        for child in progress.children:
            begin(progress, child, 0 if child.project.startswith("zero") else
                  totals[int(child.project[1:])])
    runs = [Shown(alone), Shown(beside)]
    zero_names = [n for n in mixed if n.startswith("zero")]
    for index, op, amount in script:
        if op == "zero_finish":
            beside.finish(by_name[zero_names[index % len(zero_names)]], "ok")
        else:
            name = names[index % len(names)]
            for progress in (alone, beside):
                child = next(c for c in progress.children if c.project == name)
                if op == "advance":
                    report(progress, child, done=child.work.done + amount)
                elif op == "total":
                    report(progress, child, total=amount + 1)
                else:
                    progress.finish(child, "ok" if op == "finish" else "cancelled")
        for run in runs:
            run.report()
        assert runs[0].stream.shown == runs[1].stream.shown  # their narratives differ: counts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=4), min_size=2, max_size=4),
       st.data())
def test_finishing_one_action_moves_the_bar_by_its_share(groups: list[list[int]],
                                                         data: st.DataObject) -> None:
    """Action k's share is its number of children over all children, whatever the units."""
    children = [(f"p{i}", f"a{k}") for k, group in enumerate(groups) for i in range(len(group))]
    totals = [t for group in groups for t in group]
    progress = BatchProgress(children)
    k = data.draw(st.integers(0, len(groups) - 1))
    for child, total in zip(progress.children, totals, strict=True):
        if child.action != f"a{k}":
            begin(progress, child, total)
            report(progress, child, done=data.draw(st.integers(0, total)))
    before = progress.fraction()
    for child, total in zip(progress.children, totals, strict=True):
        if child.action == f"a{k}":
            begin(progress, child, total)
            report(progress, child, done=total)
            progress.finish(child, "ok")
    after = progress.fraction()
    assert before is not None and after is not None
    assert math.isclose(after - before, len(groups[k]) / len(children), abs_tol=1e-9)


def test_units_compare_only_within_an_action() -> None:
    """lint 10 of 10 files next to stats' 1,000,000 units: half done, not 0%."""
    progress = BatchProgress([("a", "lint"), ("a", "stats")])
    lint, stats = progress.children
    begin(progress, lint, 10)
    begin(progress, stats, 1_000_000)
    report(progress, lint, done=10)
    progress.finish(lint, "ok")
    assert progress.fraction() == 0.5
    same = BatchProgress([("a", "lint"), ("b", "lint")])
    begin(same, same.children[0], 10)
    begin(same, same.children[1], 30)
    same.finish(same.children[0], "ok")
    assert same.fraction() == 0.25  # rule 3: 10 and 30 of one action


def test_zero_total_is_done_and_untotalled_others_still_count() -> None:
    """The issue's reproduction: one child of 0 units used to pin the bar at 0%."""
    progress = BatchProgress([("a", "lint"), ("b", "lint"), ("c", "lint")])
    empty, b, c = progress.children
    begin(progress, empty, 0)
    begin(progress, b, None)
    begin(progress, c, None)
    progress.finish(empty, "ok")
    assert progress.fraction() == 0.0
    progress.finish(b, "ok")
    assert progress.fraction() == 0.5
    runner_level = Composite(3)
    runner_level.add(total=0).finish()
    runner_level.add().finish()
    assert runner_level.fraction() == 0.5, "the runner's Work mean ignores zero totals too"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=5), st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(["begin", "begin_untotalled", "done", "percent",
                                                  "total", "ok", "failed", "cancelled", "junk"]),
              st.integers(0, 40)), max_size=50))
def test_history_weighting_keeps_the_rules_for_any_interleaving(
        seconds: list[float], script: list[tuple[int, str, int]]) -> None:
    progress = BatchProgress([(f"p{i}", "lint") for i in range(len(seconds))],
                             [Timing(s) for s in seconds])
    assert progress.timed
    shown = Shown(progress)
    for index, op, amount in script:
        child = progress.children[index % len(seconds)]
        if op in ("begin", "begin_untotalled"):
            progress.running(child, 0.0)
            progress.fold(child, {"kind": "begin", "total": amount} if op == "begin" else
                          {"kind": "begin"}, 0.0)
        elif op == "done":
            report(progress, child, done=child.work.done + amount)
        elif op == "percent":
            report(progress, child, percentage=amount * 2.5)
        elif op == "total":
            report(progress, child, total=amount)
        elif op == "junk":
            report(progress, child, done=-amount, percentage="x")
        else:
            progress.finish(child, op)
        fraction = progress.fraction()
        assert fraction is None or 0.0 <= fraction <= 1.0
        shown.report()
    assert all(p <= 99 for p in shown.percentages()), "100 before every child finished"
    for child in progress.children:
        progress.finish(child, "ok")
    complete = all(c.status != "cancelled" for c in progress.children)
    percentages = shown.end(complete)
    if complete:
        assert progress.fraction() == 1.0
    if shown.stream.determinate:
        assert (percentages[-1] == 100) == complete


def test_history_weighs_by_expected_seconds_only_when_every_child_has_one() -> None:
    timed = BatchProgress([("fast", "lint"), ("slow", "lint")], [Timing(1.0), Timing(3.0)])
    begin(timed, timed.children[0], 40)
    timed.finish(timed.children[0], "ok")
    assert timed.fraction() == 0.25
    partly = BatchProgress([("fast", "lint"), ("slow", "lint")], [Timing(1.0), None])
    begin(partly, partly.children[0], 40)
    begin(partly, partly.children[1], 10)
    partly.finish(partly.children[0], "ok")
    assert not partly.timed and partly.fraction() == 0.8  # units, as without history


# -- stall notice, estimate, starting -----------------------------------------------------------

def test_stall_notice_names_the_silent_child_and_counts_up() -> None:
    progress = BatchProgress([("pkg-a", "lint"), ("pkg-b", "lint")])
    a, b = progress.children
    begin(progress, a, 10, now=0.0)
    begin(progress, b, 10, now=0.0)
    report(progress, a, now=1.0, message="utils.py")
    report(progress, b, now=2.0, message="core.py")
    assert progress.narrative(5.9) == "0/2 · lint · pkg-b: core.py"
    assert progress.narrative(6.0) == "0/2 · waiting on pkg-a · lint (5 s without progress)"
    assert progress.narrative(8.5) == "0/2 · waiting on pkg-a · lint (7 s without progress)"
    report(progress, a, now=8.6, done=5)
    assert progress.narrative(8.6) == "0/2 · waiting on pkg-b · lint (6 s without progress)"
    progress.finish(b, "failed")
    assert progress.narrative(9.0) == "1/2 · lint · pkg-a: utils.py"
    rows = progress.rows(14.0)
    assert [(r.project, r.fraction, r.message) for r in rows] == [("pkg-a", 0.5, "utils.py")]
    assert rows[0].quiet is not None and math.isclose(rows[0].quiet, 5.4)


def test_starting_runners_only_while_a_child_waits_for_its_runner() -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint"), ("c", "lint")])
    a, b, _queued = progress.children
    assert "starting" not in progress.narrative(0.0), "queued children start nothing"
    a.starting = True
    assert progress.narrative(0.0) == "0/3 · starting runners"
    progress.running(a, 0.1)
    b.starting = True
    progress.finish(b, "failed")  # its runner never came up
    assert "starting" not in progress.narrative(0.2)


def test_a_single_child_batch_narrates_without_counts() -> None:
    """`0/1 ·` says nothing: one child's batch (top-level or delegated) leaves the counts out."""
    progress = BatchProgress([("app", "lint")])
    (child,) = progress.children
    assert progress.narrative(0.0) == ""
    child.starting = True
    assert progress.narrative(0.0) == "starting runners"
    begin(progress, child, 10, now=0.1)
    report(progress, child, now=0.2, message="utils.py", done=3)
    assert progress.narrative(0.2) == "lint · app: utils.py"
    assert progress.narrative(5.2) == "waiting on app · lint (5 s without progress)"
    progress.started = 0.0
    assert progress.narrative(3.0, estimate=True) == "lint · app: utils.py · ~7 s left"
    progress.finish(child, "ok")
    assert progress.narrative(3.0) == ""
    assert progress.outcome() == "1 ok"
    two = BatchProgress([("app", "lint"), ("lib", "lint")])
    assert two.narrative(0.0) == "0/2", "two or more children keep their counts"


def test_estimate_from_elapsed_time_and_fraction() -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint")])
    progress.started = 100.0
    a, b = progress.children
    begin(progress, a, 10, now=100.0)
    begin(progress, b, 10, now=100.0)
    report(progress, a, now=102.0, done=10)
    assert progress.estimate(102.9) is None, "not in the first seconds"
    report(progress, a, now=108.0, message="wrapping up")  # news, so neither is stalled
    report(progress, b, now=108.0, message="thinking")
    assert progress.estimate(110.0) == pytest.approx(10 * 0.5 / 0.5)
    assert progress.narrative(110.0, estimate=True).endswith(" · ~10 s left")
    assert "left" not in progress.narrative(110.0), "only on a stream with a percentage"
    report(progress, b, now=111.0, done=10)
    assert progress.estimate(111.0) is None, "all done, not yet answered: nothing left to say"
    progress.finish(a, "ok")
    progress.finish(b, "ok")
    assert progress.estimate(112.0) is None


def test_estimate_from_history_spreads_the_rest_over_the_lanes() -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint"), ("c", "lint")],
                             [Timing(10.0), Timing(10.0), Timing(40.0)], lanes=2)
    progress.started = 0.0
    a, b, c = progress.children
    for child in (a, b, c):
        begin(progress, child, 100)
    report(progress, a, now=5.0, done=50)
    report(progress, b, now=5.0, done=50)
    report(progress, c, now=5.0, done=25)
    assert progress.estimate(5.0) == pytest.approx(30.0), "the longest remainder bounds it"
    progress.finish(c, "ok")
    assert progress.estimate(5.0) == pytest.approx(5.0), "(5 + 5) over 2 lanes"
    untotalled = BatchProgress([("a", "lint"), ("b", "lint")], [Timing(20.0), Timing(20.0)],
                               lanes=1)
    untotalled.started = 0.0
    begin(untotalled, untotalled.children[0], None, now=0.0)
    assert untotalled.estimate(4.0) == pytest.approx(16.0 + 20.0), "its expected time, less ran"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(
    st.integers(0, 3), st.sampled_from(["begin", "begin_untotalled", "done", "total", "finish"]),
    st.integers(0, 20), st.floats(0, 3)), max_size=40), st.booleans())
def test_estimate_never_appears_without_a_percentage(
        count: int, script: list[tuple[int, str, int, float]], timed: bool) -> None:
    progress = BatchProgress([(f"p{i}", "lint") for i in range(count)],
                             [Timing(5.0)] * count if timed else None)
    progress.started = 0.0
    shown = Shown(progress)
    now = 0.0
    for index, op, amount, pause in script:
        now += pause
        child = progress.children[index % count]
        if op.startswith("begin") and (child.state != "waiting" or child.status):
            continue
        if op == "begin":
            begin(progress, child, amount, now)
        elif op == "begin_untotalled":
            begin(progress, child, None, now)
        elif op == "done":
            report(progress, child, now, done=child.work.done + amount, message=f"m{amount}")
        elif op == "total":
            report(progress, child, now, total=amount)
        else:
            progress.finish(child, "ok")
        if "left" in progress.narrative(now, estimate=True):
            assert progress.measurable()
        shown.report(now)
    for value in shown.values:
        if "left" in value.get("message", ""):
            assert "percentage" in value, shown.values


def test_seconds_left_wording() -> None:
    assert [describe_seconds_left(s) for s in (0.2, 40.4, 89, 150, 7200)] == [
        "~1 s left", "~40 s left", "~89 s left", "~2 min left", "~2 h left"]


# -- history: honest against counted work ----------------------------------------------------

history_children = st.lists(st.tuples(
    st.sampled_from(["lint", "stats"]),
    st.one_of(st.none(), st.integers(0, 50)),  # the total it declares when it begins
    st.floats(0.01, 100),  # recorded seconds: right, stale or absurd
    st.one_of(st.none(), st.integers(0, 50))),  # the total recorded with them
    min_size=1, max_size=6)
history_script = st.lists(st.tuples(
    st.integers(0, 5), st.sampled_from(["begin", "advance", "total", "percent", "ok", "failed",
                                        "cancelled"]), st.integers(0, 30)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(history_children, history_script)
def test_history_never_puts_the_bar_more_than_the_margin_above_counted_work(
        specs: list[tuple[str, int | None, float, int | None]],
        script: list[tuple[int, str, int]]) -> None:
    """Whatever history says and in whatever order children speak, the shown percentage is at
    most 100 × (the counted fraction + HISTORY_MARGIN), the counted fraction held as the
    stream holds it, and it never decreases."""
    names = [(f"p{i}", action) for i, (action, *_) in enumerate(specs)]
    timed = BatchProgress(names, [Timing(seconds, total) for _, _, seconds, total in specs])
    counted = BatchProgress(names)
    shown = Shown(timed)
    held = counted.fraction() or 0.0
    for index, op, amount in script:
        i = index % len(specs)
        for progress in (timed, counted):
            child = progress.children[i]
            if op == "begin":
                if child.state == "waiting" and child.status is None:
                    begin(progress, child, specs[i][1])
            elif op == "advance":
                report(progress, child, done=child.work.done + amount)
            elif op == "total":
                report(progress, child, total=amount)
            elif op == "percent":
                report(progress, child, percentage=amount * 3)
            else:
                progress.finish(child, op)
        held = max(held, counted.fraction() or 0.0)
        shown.report()
        fraction = timed.fraction()
        if shown.stream.determinate:
            assert fraction is not None
            assert fraction <= timed.counted_fraction() + HISTORY_MARGIN + 1e-9
            assert shown.stream.shown is not None
            assert shown.stream.shown <= 100 * (held + HISTORY_MARGIN) + 1e-6, (
                shown.percentages(), held)
    for progress in (timed, counted):
        for child in progress.children:
            progress.finish(child, "ok")
    shown.end(all(c.status != "cancelled" for c in timed.children))  # never decreasing


def test_stale_history_cannot_run_ahead_of_the_files_done() -> None:
    """The issue: three projects done, the fourth's handler got slower since its history was
    taken (0.3 s for 32 files then); with 6 of its 32 files done, time alone would say ~96%."""
    progress = BatchProgress([(p, "lint") for p in "abcd"],
                             [Timing(2.0, 8), Timing(2.0, 8), Timing(2.0, 8), Timing(0.3, 32)])
    *first, last = progress.children
    for child in first:
        begin(progress, child, 8)
        report(progress, child, done=8)
        progress.finish(child, "ok")
    begin(progress, last, 32)
    report(progress, last, done=6)
    assert progress.timed
    counted = (24 + 6) / 56
    assert progress.counted_fraction() == pytest.approx(counted)
    assert progress.fraction() == pytest.approx(counted + HISTORY_MARGIN)
    shown = Shown(progress)
    assert shown.percentages() == [math.floor(100 * (counted + HISTORY_MARGIN))]


def test_history_scales_with_the_units_a_run_declares() -> None:
    recorded = Timing(4.0, 40)
    assert [recorded.for_total(t) for t in (40, 80, 10, 0, None)] == [4.0, 8.0, 1.0, 0.0, 4.0]
    assert Timing(2.0).for_total(10) == 2.0, "it declared no units then: as recorded"
    assert Timing(0.5, 0).for_total(10) is None, "no work then, work now: no basis"
    progress = BatchProgress([("a", "lint"), ("b", "lint")], [Timing(1.0, 10), Timing(0.2, 0)])
    a, b = progress.children
    assert progress.timed, "before they declare anything, the recorded times"
    begin(progress, a, 30)
    assert a.expected == 3.0 and progress.timed
    begin(progress, b, 5)
    assert b.expected is None and not progress.timed, "then the units rule, as without history"
    assert progress.fraction() == progress.counted_fraction() == 0.0


# -- estimate while stalled ---------------------------------------------------------------------

@pytest.mark.parametrize("timings", [None, [Timing(10.0, 10), Timing(10.0, 10)]],
                         ids=["elapsed", "history"])
def test_estimate_is_paused_while_a_child_is_stalled(timings: list[Timing] | None) -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint")], timings, lanes=2)
    progress.started = 0.0
    a, b = progress.children
    begin(progress, a, 10, now=0.0)
    begin(progress, b, 10, now=0.0)
    report(progress, a, now=1.0, done=5)
    report(progress, b, now=3.0, done=5)
    before = progress.estimate(4.0)
    assert before is not None and math.isfinite(before)
    assert progress.narrative(4.0, estimate=True).endswith(" s left")
    for now in (6.0, 7.5, 30.0, 600.0):  # a silent 5 s and more
        assert progress.estimate(now) == math.inf
        words = progress.narrative(now, estimate=True)
        assert "waiting on a · lint" in words and words.endswith(" · estimate paused"), words
    assert "paused" not in progress.narrative(30.0), "no estimate on a stream without a bar"
    report(progress, a, now=601.0, done=6)
    report(progress, b, now=601.0, done=6)
    after = progress.estimate(601.0)
    assert after is not None and math.isfinite(after), "back as soon as they speak"


def test_estimate_from_history_follows_a_child_slower_than_its_history() -> None:
    """10 s expected, half done after 8 s: its own pace says 8 s more, not 5; and while it
    only chats (no units), what is left grows with the time it takes."""
    progress = BatchProgress([("a", "lint"), ("b", "lint")], [Timing(10.0), Timing(1.0)])
    progress.started = 0.0
    a, b = progress.children
    begin(progress, a, 10, now=0.0)
    begin(progress, b, 10, now=0.0)
    progress.finish(b, "ok")
    report(progress, a, now=8.0, done=5)
    assert progress.estimate(8.0) == pytest.approx(8.0)
    report(progress, a, now=9.0, message="still on it")
    report(progress, a, now=10.0, message="still on it")
    assert progress.estimate(10.0) == pytest.approx(10.0)
    untotalled = BatchProgress([("a", "lint"), ("b", "lint")], [Timing(4.0), Timing(4.0)])
    untotalled.started = 0.0
    c, _ = untotalled.children
    begin(untotalled, c, None, now=0.0)
    report(untotalled, c, now=3.5, message="busy")
    assert untotalled.estimate(3.5) == pytest.approx(0.5 + 4.0)
    report(untotalled, c, now=4.5, message="busy")
    assert untotalled.estimate(4.5) == pytest.approx(0.0 + 4.0), "just past it: a grace"
    report(untotalled, c, now=5.5, message="busy")
    assert untotalled.estimate(5.5) == math.inf, "well past its expected time, nothing measured"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(
    st.integers(0, 3), st.sampled_from(["begin", "begin_untotalled", "done", "message", "total",
                                        "finish"]),
    st.integers(0, 20), st.floats(0, 3)), max_size=40), st.booleans(),
    st.lists(st.floats(0.1, 20), min_size=1, max_size=10))
def test_estimate_never_freezes_or_shrinks_while_stalled(
        count: int, script: list[tuple[int, str, int, float]], timed: bool,
        silence: list[float]) -> None:
    progress = BatchProgress([(f"p{i}", "lint") for i in range(count)],
                             [Timing(5.0, 10)] * count if timed else None, lanes=2)
    progress.started = 0.0
    now = 0.0
    for index, op, amount, pause in script:
        now += pause
        child = progress.children[index % count]
        if op.startswith("begin") and (child.state != "waiting" or child.status):
            continue
        if op == "begin":
            begin(progress, child, amount, now)
        elif op == "begin_untotalled":
            begin(progress, child, None, now)
        elif op == "done":
            report(progress, child, now, done=child.work.done + amount)
        elif op == "message":
            report(progress, child, now, message=f"m{amount}")
        elif op == "total":
            report(progress, child, now, total=amount)
        else:
            progress.finish(child, "ok")
    earlier: float | None = None
    for pause in silence:  # nothing happens from here on
        now += pause
        left = progress.estimate(now)
        if progress.stalled(now) is not None:
            assert left is None or left == math.inf, left
            if earlier is not None:
                assert left is not None and left >= earlier
            earlier = left if left is not None else earlier
        words = progress.narrative(now, estimate=True)
        assert ("waiting on" in words) == (progress.stalled(now) is not None)
        assert not re.search(r"~\d+ \w+ left", words) or "waiting on" not in words, words


# -- history ----------------------------------------------------------------------------------

FAST = {"handlers": [{"source": "probe:units", "config": {"delay": 0.01}}]}
SLOW = {"handlers": [{"source": "probe:units", "config": {"delay": 0.1}}]}


def test_history_is_keyed_by_what_determines_the_work() -> None:
    fast, slow, edited = signature(FAST, "v1"), signature(SLOW, "v1"), signature(FAST, "v2")
    assert len({fast, slow, edited}) == 3 and fast == signature(dict(FAST), "v1")
    assert signature({"when": datetime.date(2024, 1, 1)}, ""), "TOML dates do not break it"
    history = History()
    history.record("/p", "lint", fast, 4.0, 40)
    assert history.timing("/p", "lint", fast) == Timing(4.0, 40)
    assert history.timing("/p", "lint", slow) is None, "another config: not used"
    assert history.timing("/p", "lint", edited) is None, "other handler code: not used"
    assert history.timing("/p", "stats", fast) is None
    assert history.timing("/q", "lint", fast) is None
    history.record("/p", "lint", fast, 8.0, 80)
    assert history.timing("/p", "lint", fast) == Timing(8.0, 80), "4 s for 40 is 8 s for 80"
    history.record("/p", "lint", fast, 2.0, 80)
    assert history.timing("/p", "lint", fast) == Timing(5.0, 80), "each run counts half"
    history.record("/p", "lint", slow, 40.0, 80)
    assert history.timing("/p", "lint", slow) == Timing(40.0, 80), "replaced, not smoothed"
    assert history.timing("/p", "lint", fast) is None and len(history) == 1
    history.record("/p", "lint", slow, math.nan, 80)
    history.record("/p", "lint", slow, -1.0, 80)
    assert history.timing("/p", "lint", slow) == Timing(40.0, 80)


@pytest.mark.timeout(10)
def test_a_history_file_that_is_no_regular_file_counts_as_none(tmp_path: Path) -> None:
    """A FIFO in its place (a restored CI cache) would block every run before it starts."""
    os.mkfifo(tmp_path / "history.json")
    assert len(load(tmp_path / "history.json")) == 0


def test_history_file_is_bounded_atomic_and_ignores_corrupt_or_older_files(
        tmp_path: Path) -> None:
    history = History(limit=3)
    history.record("/p", "lint", "s", 4.0)
    for name in ("a", "b", "c"):
        history.record(f"/{name}", "lint", "s", 1.0, 7)
    assert len(history) == 3 and history.timing("/p", "lint", "s") is None, "oldest dropped"
    path = tmp_path / "cache" / "finecode" / "history.json"
    save(history, path)
    assert load(path).to_json() == history.to_json()
    assert load(path).timing("/a", "lint", "s") == Timing(1.0, 7)
    assert [p.name for p in path.parent.iterdir()] == ["history.json"], "no temporary left"
    path.write_text("{not json")
    assert len(load(path)) == 0
    path.write_text(json.dumps({"version": 1, "entries": [["/y", "lint", 2]]}))
    assert len(load(path)) == 0, "the format before signatures is ignored"
    path.write_text(json.dumps({"version": 2, "entries": [
        ["/x", "lint", "s", "slow", None], ["/y", "lint", "s", 2, None], ["/z", "lint", "s", 1,
                                                                          -3],
        ["/w", "lint", 5, 1, None], "junk", ["/v", "lint", "s", 1.5, 12]]}))
    kept = load(path)
    assert len(kept) == 2 and kept.timing("/y", "lint", "s") == Timing(2.0)
    assert kept.timing("/v", "lint", "s") == Timing(1.5, 12)
    assert len(load(tmp_path / "missing.json")) == 0
