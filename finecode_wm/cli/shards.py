"""`--shard I/N`: the projects split into N parts of about equal expected time.

Each project weighs its expected seconds (the sum, over the actions run, of what history
recorded for it; an action without a record weighs the mean of that action's records, 1 s
when there are none). The heaviest project goes first to the lightest part (ties: the one
with fewer projects, then the lower part), ties between projects broken by path:
deterministic for the same projects and history, every project in exactly one part, and no
part heavier than the lightest by more than one project's weight. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["parse_shard", "partition", "weights"]

UNKNOWN = 1.0  # seconds an action weighs when no project has a record of it


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (1 ≤ I ≤ N) as `(I, N)`; `ValueError` saying what is wrong."""
    index, slash, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not slash or n < 1 or not 1 <= i <= n:
        raise ValueError(f"must be I/N with 1 <= I <= N (e.g. 2/4), got {text!r}")
    return i, n


def weights(projects: Sequence[str], actions: Mapping[str, Sequence[str]],
            recorded: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Expected seconds per project: the actions it runs (`actions[project]`), each at its
    `recorded` time, else the mean recorded for that action, else `UNKNOWN`."""
    by_action: dict[str, list[float]] = {}
    for (_project, action), seconds in recorded.items():
        by_action.setdefault(action, []).append(seconds)
    mean = {a: sum(s) / len(s) for a, s in by_action.items() if s}
    return {p: sum(recorded.get((p, a), mean.get(a, UNKNOWN)) for a in actions.get(p, ()))
            for p in projects}


def partition(weighed: Mapping[str, float], count: int) -> list[list[str]]:
    """`count` parts (each sorted by path) of the projects in `weighed`, greedily balanced."""
    parts: list[list[str]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for project in sorted(weighed, key=lambda p: (-weighed[p], p)):
        lightest = min(range(count), key=lambda i: (loads[i], len(parts[i]), i))
        parts[lightest].append(project)
        loads[lightest] += weighed[project]
    return [sorted(part) for part in parts]
