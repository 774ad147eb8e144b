"""Property-based tests of the combining state machine (finecode_er.work, finecode_er.streams)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_er.streams import FractionStream, Stream, StreamError
from finecode_er.work import Composite, Scope, Work

pytestmark = pytest.mark.timeout(120)


@dataclass
class Sim:
    """Drives a Work tree and a Stream the way the runner and the WM do."""

    root: Work
    stream: Stream = field(default_factory=lambda: Stream("t"))
    values: list[dict] = field(default_factory=list)

    def begin(self) -> None:
        self.values.append(self.stream.begin(determinate=self.root.units() is not None,
                                             fraction=self.root.fraction()))

    def report(self, complete: bool = False) -> None:
        value = self.stream.report(fraction=self.root.fraction(), complete=complete)
        if value is not None:
            self.values.append(value)

    def end(self) -> None:
        self.report(complete=True)
        self.values.append(self.stream.end("done"))

    def percentages(self) -> list[int]:
        return [v["percentage"] for v in self.values if "percentage" in v]


# An event: (part index, op, amount). Ops: open with/without total, advance, set total, finish,
# open a nested scope / advance it / finish it.
events = st.lists(
    st.tuples(st.integers(0, 5),
              st.sampled_from(["open", "open_untotalled", "advance", "total", "finish",
                               "abandon", "nest", "nest_advance", "nest_finish", "percent"]),
              st.integers(0, 50)),
    max_size=80)


def drive(expected: int, script: list[tuple[int, str, int]]) -> tuple[Sim, list[Scope]]:
    sim = Sim(Composite(expected))
    parts: dict[int, Scope] = {}
    nests: dict[int, Scope] = {}
    began = False
    for index, op, amount in script:
        part = parts.get(index)
        if op in ("open", "open_untotalled") and part is None and len(parts) < max(expected, 1):
            parts[index] = sim.root.add(total=amount if op == "open" else None)
        elif part is None or part.ended:
            continue
        elif op == "advance":
            part.done += amount
        elif op == "total":
            part.total = amount
        elif op == "percent":
            part.set_fraction(amount / 50)
        elif op == "finish":
            part.finish()
        elif op == "abandon":
            part.finish(abandoned=True)
        elif op == "nest" and index not in nests:
            nests[index] = part.add(total=amount)
        elif op == "nest_advance" and index in nests:
            nests[index].done += amount
        elif op == "nest_finish" and index in nests:
            nests.pop(index).finish()
        if not began:
            sim.begin()
            began = True
        else:
            sim.report()
    if not began:
        sim.begin()
    return sim, list(parts.values())


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 6), events)
def test_any_interleaving_gives_one_honest_stream(expected: int, script) -> None:  # type: ignore[no-untyped-def]
    sim, parts = drive(expected, script)
    assert all(p <= 99 for p in sim.percentages()), "100 before the work was complete"
    for part in parts:
        part.finish()
    sim.end()
    kinds = [v["kind"] for v in sim.values]
    assert kinds[0] == "begin" and kinds[-1] == "end"
    assert kinds.count("begin") == 1 and kinds.count("end") == 1
    shown = sim.percentages()
    assert all(isinstance(p, int) and 0 <= p <= 100 for p in shown)
    assert shown == sorted(shown), shown
    if sim.stream.determinate:
        assert shown[-1] == 100
    else:
        assert shown == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=2, max_size=8), st.data())
def test_weighting_is_proportional_to_declared_totals(totals: list[int], data) -> None:  # type: ignore[no-untyped-def]
    root = Composite(len(totals))
    parts = [root.add(total=t) for t in totals]
    finished = data.draw(st.sets(st.integers(0, len(totals) - 1)))
    for i in finished:
        parts[i].done = totals[i]
        parts[i].finish()
    expected = sum(totals[i] for i in finished) / sum(totals)
    fraction = root.fraction()
    assert fraction is not None and math.isclose(fraction, expected, rel_tol=1e-9, abs_tol=1e-12)
    assert root.units() == sum(totals)


def test_ten_and_thirty_moves_to_a_quarter() -> None:
    sim = Sim(Composite(2))
    small, big = sim.root.add(total=10), sim.root.add(total=30)
    sim.begin()
    small.done = 10
    small.finish()
    sim.report()
    assert sim.percentages()[-1] == 25
    big.done = 30
    big.finish()
    sim.end()
    assert sim.percentages()[-1] == 100


def test_late_total_holds_the_bar_until_the_truth_passes_it() -> None:
    sim = Sim(Composite(2))
    a = sim.root.add(total=10)
    sim.begin()
    a.done = 10
    a.finish()
    sim.report()
    assert sim.percentages()[-1] == 50  # the other part weighs the mean of the known: 10
    b = sim.root.add(total=None)
    b.total = 90  # late: the truth is now 10%
    sim.report()
    assert sim.percentages()[-1] == 50
    b.done = 80  # truth: 90/100
    sim.report()
    assert sim.percentages()[-1] == 90


def test_count_is_the_measure_without_totals_and_single_untotalled_is_not_measurable() -> None:
    root = Composite(4)
    assert root.units() == 4 and root.fraction() == 0
    root.add().finish()
    assert root.fraction() == 0.25
    single = Composite(1)
    part = single.add()
    assert single.units() is None and single.fraction() is None
    part.set_fraction(0.4)
    assert single.fraction() == 0.4  # a percentage reported directly still shows


def test_abandoned_part_keeps_only_the_progress_it_made() -> None:
    root = Composite(2)
    cancelled, other = root.add(total=10), root.add(total=30)
    cancelled.done = 2
    cancelled.finish(abandoned=True)
    assert root.fraction() == 2 / 40 and root.units() == 40
    untotalled = Composite(2)
    untotalled.add().finish(abandoned=True)
    assert untotalled.fraction() == 0.0
    other.finish()
    assert root.fraction() == 32 / 40


def test_nested_scope_moves_its_parent_within_one_step() -> None:
    outer = Scope(2)
    inner = outer.add(total=4)
    inner.done = 2
    assert outer.fraction() == 0.25
    inner.finish()
    outer.done = 1
    assert outer.fraction() == 0.5


def test_ended_parts_are_folded_so_memory_stays_flat() -> None:
    root = Composite()
    for _ in range(10_000):
        root.add(total=1).finish()
    assert root._active == [] and root.units() == 10_000 and root.fraction() == 1.0


def test_stream_misuse_is_a_bug() -> None:
    stream = Stream("t")
    with pytest.raises(StreamError):
        stream.report(fraction=0.5)
    stream.begin(determinate=True)
    with pytest.raises(StreamError):
        stream.begin(determinate=True)
    stream.end()
    with pytest.raises(StreamError):
        stream.end()


def test_unchanged_reports_are_not_resent() -> None:
    stream = Stream("t")
    stream.begin(determinate=True, fraction=0.1)
    assert stream.report(fraction=0.105) is None
    assert stream.report(fraction=0.2) == {"kind": "report", "percentage": 20}
    assert stream.report(fraction=0.2, message="m") == {"kind": "report", "message": "m",
                                                         "percentage": 20}




# -- what a delegating runner is told ---------------------------------------------------------

fractions = st.lists(st.one_of(st.none(), st.floats(-0.5, 1.5), st.just(math.nan)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(fractions, st.booleans())
def test_fraction_stream_never_goes_back_and_is_one_only_when_complete(
        script: list[float | None], complete: bool) -> None:
    stream = FractionStream()
    values = [stream.begin(fraction=None, message="starting runners")]
    for fraction in script:
        value = stream.report(fraction=fraction, message="m")
        if value is not None:
            values.append(value)
    last = stream.report(fraction=script[-1] if script else None, complete=complete)
    if last is not None:
        values.append(last)
    assert stream.end("1 ok") is None, "the answer to the delegation ends it, not a value"
    assert all(v["kind"] == "fraction" for v in values)
    sent = [v["fraction"] for v in values if "fraction" in v]
    assert all(0.0 <= f <= 1.0 for f in sent), sent
    assert sent == sorted(sent), f"a fraction went back: {sent}"
    if complete:
        assert sent[-1] == 1.0
    finite = [f for f in script if f is not None and not math.isnan(f)]
    if not complete and not finite:
        assert sent == [], "nothing measurable, no fraction invented"


def test_fraction_stream_takes_a_late_fraction_and_holds_a_dip() -> None:
    stream = FractionStream()
    assert stream.begin(fraction=None, message="a") == {"kind": "fraction", "message": "a"}
    assert stream.report(fraction=None, message="a") is None, "unchanged: not resent"
    assert stream.report(fraction=0.25, message="a") == {"kind": "fraction", "fraction": 0.25,
                                                         "message": "a"}
    assert stream.report(fraction=0.1, message="a") is None, "a late total holds the fraction"
    assert stream.report(fraction=0.1, message="b") == {"kind": "fraction", "fraction": 0.25,
                                                        "message": "b"}
    assert stream.report(fraction=1 / 3, message="b")["fraction"] == 0.333333  # type: ignore[index]
    assert stream.report(fraction=0.5, complete=True)["fraction"] == 1.0  # type: ignore[index]
    stream.end()
    with pytest.raises(StreamError):
        stream.report(fraction=0.5)
