"""Shared helpers of the benchmark suite: timing, statistics, machine facts, figures.

Every benchmark module returns a list of `Figure`s; `run.py` prints and stores them. Nothing in
here knows about FineCode: see `wm_client.py` for the LSP client and generated workspaces.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024

now = time.perf_counter


@dataclass
class Stats:
    """Median of N samples plus min/max (all in the figure's unit)."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))


@dataclass
class Figure:
    """One reported number: `stats` over N runs, a goal and whether it is met (None: no goal)."""

    bench: str
    name: str
    unit: str
    stats: Stats
    goal: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def figure(bench: str, name: str, unit: str, samples: Sequence[float] | float, *,
           goal_max: float | None = None, goal_min: float | None = None, goal: str = "",
           note: str = "", **extra: Any) -> Figure:
    """A figure from samples; `goal_max`/`goal_min` judge the median."""
    values = [float(samples)] if isinstance(samples, int | float) else [float(s) for s in samples]
    stats = Stats.of(values)
    ok: bool | None = None
    if goal_max is not None:
        ok = stats.median <= goal_max
        goal = goal or f"≤ {goal_max:g}"
    elif goal_min is not None:
        ok = stats.median >= goal_min
        goal = goal or f"≥ {goal_min:g}"
    return Figure(bench, name, unit, stats, goal, ok, note, dict(extra))


def ratio_samples(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Pairwise ratios a[i]/b[i] of interleaved runs (pairs share machine conditions)."""
    return [x / y for x, y in zip(a, b, strict=True) if y > 0]


def interleave(runs: int, variants: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each variant once per round, rotating the order, so drift hits all alike."""
    names = list(variants)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            samples[name].append(variants[name]())
    return samples


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "executable": sys.executable,
    }
