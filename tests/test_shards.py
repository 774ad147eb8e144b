"""`--shard I/N`: every project in exactly one part, deterministic, balanced by recorded time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finecode_wm.cli.shards import UNKNOWN, parse_shard, partition, weights

names = st.text("abcdefgh/", min_size=1, max_size=8)
durations = st.floats(min_value=0, max_value=1e4, allow_nan=False)
workloads = st.dictionaries(names, durations, max_size=40)


@given(workloads, st.integers(min_value=1, max_value=12))
def test_every_project_in_exactly_one_part(weighed: dict[str, float], count: int) -> None:
    parts = partition(weighed, count)
    assert len(parts) == count
    every = [p for part in parts for p in part]
    assert sorted(every) == sorted(weighed) and len(every) == len(set(every))


@given(workloads, st.integers(min_value=1, max_value=12), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_order(weighed: dict[str, float], count: int,
                                          rng: object) -> None:
    items = list(weighed.items())
    rng.shuffle(items)  # type: ignore[attr-defined]
    assert partition(dict(items), count) == partition(weighed, count)


@given(workloads, st.integers(min_value=1, max_value=12))
def test_balanced_within_one_project(weighed: dict[str, float], count: int) -> None:
    """Greedy heaviest-first: no part exceeds the lightest by more than the heaviest project."""
    loads = [sum(weighed[p] for p in part) for part in partition(weighed, count)]
    heaviest = max(weighed.values(), default=0.0)
    assert max(loads) - min(loads) <= heaviest + 1e-6 * (1 + sum(loads))


def test_a_known_split() -> None:
    weighed = {"a": 10.0, "b": 6.0, "c": 5.0, "d": 4.0, "e": 1.0}
    assert partition(weighed, 2) == [["a", "d"], ["b", "c", "e"]]
    assert partition(weighed, 3) == [["a"], ["b", "e"], ["c", "d"]]
    assert partition({"x": 0.0, "y": 0.0, "z": 0.0}, 2) == [["x", "z"], ["y"]], "ties by path"
    assert partition({}, 2) == [[], []]


def test_weights_from_history_unknown_is_the_mean() -> None:
    recorded = {("/a", "lint"): 2.0, ("/b", "lint"): 4.0, ("/a", "test"): 10.0}
    actions = {"/a": ["lint", "test"], "/b": ["lint", "test"], "/c": ["lint"], "/d": ["fmt"],
               "/broken": []}
    assert weights(list(actions), actions, recorded) == {
        "/a": 12.0, "/b": 14.0, "/c": 3.0, "/d": UNKNOWN, "/broken": 0.0}


@pytest.mark.parametrize(("text", "parsed"),
                         [("1/1", (1, 1)), ("3/4", (3, 4)), ("10/12", (10, 12))])
def test_parse_shard(text: str, parsed: tuple[int, int]) -> None:
    assert parse_shard(text) == parsed


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "1/0", "a/b", "/", "-1/2", "1/2/3", ""])
def test_parse_shard_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)
