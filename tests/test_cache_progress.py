"""Cached children in the aggregated stream: done at once, counted in `N/M`, weighing nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm.aggregation import BatchProgress, Child, Timing

from .test_batch_progress import Shown, begin, report


def cache(progress: BatchProgress, child: Child) -> None:
    """What the batch does with a hit: marked, then finished ok."""
    child.cached = True
    progress.finish(child, "ok")


def test_cached_children_count_and_weigh_nothing() -> None:
    progress = BatchProgress([(f"p{i}", "lint") for i in range(4)])
    first, *rest = progress.children
    for child in rest:
        cache(progress, child)
    assert progress.fraction() == 0.0, "done at once, but none of the work that runs"
    assert progress.headline(0.0).count == "3/4"
    begin(progress, first, 10)
    report(progress, first, done=5)
    assert progress.fraction() == 0.5, "the bar is the running child's alone"
    progress.finish(first, "ok")
    assert progress.fraction() == 1.0
    assert progress.outcome() == "4 ok (3 cached)"


def test_an_action_served_from_the_cache_takes_no_share_of_the_bar() -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint"), ("a", "format"), ("b", "format")])
    lint_a, lint_b, format_a, _format_b = progress.children
    cache(progress, lint_a)
    cache(progress, lint_b)
    assert progress.fraction() == 0.0
    progress.finish(format_a, "ok")
    assert progress.fraction() == 0.5


def test_history_weighting_leaves_cached_children_out() -> None:
    timings = [Timing(10.0), Timing(1.0), Timing(1.0)]
    progress = BatchProgress([("slow", "lint"), ("a", "lint"), ("b", "lint")], timings)
    slow, a, _b = progress.children
    cache(progress, slow)
    assert progress.timed and progress.fraction() == 0.0
    progress.finish(a, "ok")
    assert progress.fraction() == 0.5


def test_everything_cached_is_complete() -> None:
    progress = BatchProgress([("a", "lint"), ("b", "lint")])
    for child in progress.children:
        cache(progress, child)
    assert progress.fraction() == 1.0 and progress.outcome() == "2 ok (2 cached)"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["cache", "advance", "finish"]),
                          st.integers(0, 10)), max_size=40))
def test_hits_arriving_in_any_order_never_move_the_bar_back(ops: list[tuple[int, str, int]],
                                                           ) -> None:
    """Hits come while other children already run (lookups and runs overlap): a hit never
    lowers the true fraction, and the shown percentage stays monotonic whatever the order."""
    progress = BatchProgress([(f"p{i}", "lint" if i % 2 else "stats") for i in range(6)])
    shown = Shown(progress)
    done = [0] * 6
    for index, op, amount in ops:
        child = progress.children[index]
        if child.status is not None:
            continue
        if op == "cache" and child.state == "waiting":
            before = progress.fraction() or 0.0
            cache(progress, child)
            assert (progress.fraction() or 0.0) >= before - 1e-9, "a hit never takes work away"
        elif op == "advance":
            if child.state == "waiting":
                begin(progress, child, 10)
            done[index] = min(10, done[index] + amount)
            report(progress, child, done=done[index])
        elif op == "finish":
            progress.finish(child, "ok")
        shown.report()
    for child in progress.children:
        progress.finish(child, "ok")
    assert shown.end(complete=True)[-1] == 100
