"""`ProgressMapping`: the batch stream as MCP progress, strictly increasing, honest at the end."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm.mcp.progress import TOTAL, Progress, ProgressMapping

pytestmark = pytest.mark.timeout(60)


def mapped(values: list[Any]) -> list[Progress]:
    mapping = ProgressMapping()
    return [p for v in values if (p := mapping.map(v)) is not None]


def test_determinate_stream_uses_the_percentage_and_ends_at_total() -> None:
    out = mapped([{"kind": "begin", "title": "t", "percentage": 0, "message": "0/2"},
                  {"kind": "report", "percentage": 25, "message": "1/2"},
                  {"kind": "report", "percentage": 100},
                  {"kind": "end", "message": "2 ok"}])
    assert [(p.progress, p.total, p.message) for p in out] == [
        (0, TOTAL, "0/2"), (25, TOTAL, "1/2"), (TOTAL, TOTAL, "2 ok")]


def test_message_only_updates_still_increase_below_the_next_percent() -> None:
    out = mapped([{"kind": "begin", "title": "t", "percentage": 40},
                  *({"kind": "report", "percentage": 40, "message": f"file {i}"}
                    for i in range(5)),
                  {"kind": "report", "percentage": 41}])
    values = [p.progress for p in out]
    assert values[0] == 40 and values[-1] == 41
    assert all(40 < v < 41 for v in values[1:-1]) and values == sorted(set(values))
    assert [p.message for p in out[1:-1]] == [f"file {i}" for i in range(5)]


def test_indeterminate_stream_counts_without_total() -> None:
    out = mapped([{"kind": "begin", "title": "t"}, {"kind": "report", "message": "a"},
                  {"kind": "report", "percentage": 50}, {"kind": "end", "message": "1 ok"}])
    assert [(p.progress, p.total) for p in out] == [(1, None), (2, None), (3, None), (4, None)]
    assert out[-1].message == "1 ok"


def test_cancelled_run_ends_below_total() -> None:
    out = mapped([{"kind": "begin", "title": "t", "percentage": 0},
                  {"kind": "report", "percentage": 99},
                  {"kind": "end", "message": "cancelled: 1 ok, 1 cancelled"}])
    assert out[-1].message == "cancelled: 1 ok, 1 cancelled"
    assert 99 < out[-1].progress < TOTAL


def test_values_outside_a_lifecycle_are_ignored() -> None:
    assert mapped([{"kind": "report", "percentage": 10}, "garbage", {"kind": "end"}]) == []
    out = mapped([{"kind": "begin", "title": "t", "percentage": 5}, {"kind": "begin"},
                  {"kind": "end"}, {"kind": "report", "percentage": 50}])
    assert len(out) == 2


_kinds = st.sampled_from(["begin", "report", "report", "report", "end", "other"])
_percentages = st.one_of(st.integers(0, 100), st.none(), st.just(100), st.integers(-5, 105),
                         st.floats(allow_nan=True), st.text(max_size=2))
_values = st.builds(
    lambda kind, percentage, message: {"kind": kind, **(
        {} if percentage is None else {"percentage": percentage}), **(
        {} if message is None else {"message": message})},
    _kinds, _percentages, st.one_of(st.none(), st.text(max_size=5)))


@settings(max_examples=300)
@given(st.lists(st.one_of(_values, st.integers(), st.none()), max_size=60))
def test_any_stream_strictly_increases_and_reaches_total_only_at_a_complete_end(
        values: list[Any]) -> None:
    mapping = ProgressMapping()
    last = None
    seen_complete = False
    for value in values:
        if (isinstance(value, dict) and mapping.determinate and not mapping.ended
                and value.get("kind") == "report" and value.get("percentage") == 100):
            seen_complete = True
        progress = mapping.map(value)
        if progress is None:
            continue
        assert last is None or progress.progress > last
        last = progress.progress
        assert progress.total in (None, TOTAL)
        assert progress.total is None or progress.progress <= progress.total
        if progress.total is not None and progress.progress == progress.total:
            assert value["kind"] == "end" and seen_complete
