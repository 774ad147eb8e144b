"""The WM's pure aggregation (finecode_wm.progress): weighting, stall notice, estimate, history."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_er.progress import Composite, Stream
from finecode_wm.history import History, load, save
from finecode_wm.progress import BatchProgress, Child, describe_seconds_left

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
    progress = BatchProgress([(f"p{i}", "lint") for i in range(len(seconds))], seconds)
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
    timed = BatchProgress([("fast", "lint"), ("slow", "lint")], [1.0, 3.0])
    begin(timed, timed.children[0], 40)
    timed.finish(timed.children[0], "ok")
    assert timed.fraction() == 0.25
    partly = BatchProgress([("fast", "lint"), ("slow", "lint")], [1.0, None])
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
    assert progress.estimate(110.0) == pytest.approx(10 * 0.5 / 0.5)
    assert progress.narrative(110.0, estimate=True).endswith(" · ~10 s left")
    assert "left" not in progress.narrative(110.0), "only on a stream with a percentage"
    report(progress, b, now=111.0, done=10)
    assert progress.estimate(111.0) is None, "all done, not yet answered: nothing left to say"
    progress.finish(a, "ok")
    progress.finish(b, "ok")
    assert progress.estimate(112.0) is None


def test_estimate_from_history_spreads_the_rest_over_the_lanes() -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint"), ("c", "lint")], [10.0, 10.0, 40.0],
                             lanes=2)
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
    untotalled = BatchProgress([("a", "lint"), ("b", "lint")], [20.0, 20.0], lanes=1)
    untotalled.started = 0.0
    begin(untotalled, untotalled.children[0], None, now=0.0)
    assert untotalled.estimate(8.0) == pytest.approx(12.0 + 20.0), "its expected time, less ran"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(
    st.integers(0, 3), st.sampled_from(["begin", "begin_untotalled", "done", "total", "finish"]),
    st.integers(0, 20), st.floats(0, 3)), max_size=40), st.booleans())
def test_estimate_never_appears_without_a_percentage(
        count: int, script: list[tuple[int, str, int, float]], timed: bool) -> None:
    progress = BatchProgress([(f"p{i}", "lint") for i in range(count)],
                             [5.0] * count if timed else None)
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


# -- history ----------------------------------------------------------------------------------

def test_history_smooths_bounds_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    history = History(limit=3)
    history.record("/p", "lint", 4.0)
    history.record("/p", "lint", 2.0)
    assert history.expected("/p", "lint") == 3.0
    for name in ("a", "b", "c"):
        history.record(f"/{name}", "lint", 1.0)
    assert len(history) == 3 and history.expected("/p", "lint") is None, "oldest dropped"
    history.record("/a", "lint", math.nan)
    assert history.expected("/a", "lint") == 1.0
    path = tmp_path / "cache" / "finecode" / "history.json"
    save(history, path)
    assert load(path).to_json() == history.to_json()
    assert [p.name for p in path.parent.iterdir()] == ["history.json"], "no temporary left"
    path.write_text("{not json")
    assert len(load(path)) == 0
    path.write_text(json.dumps({"version": 1, "entries": [["/x", "lint", "slow"], ["/y", "lint",
                                                                                 2]]}))
    assert load(path).expected("/y", "lint") == 2.0 and len(load(path)) == 1
    assert len(load(tmp_path / "missing.json")) == 0
