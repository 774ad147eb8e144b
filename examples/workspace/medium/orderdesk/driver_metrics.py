"""Summary statistics over driver measurements."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; ``fraction`` is between 0 and 1."""
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)) - 1, 0)
    return ordered[rank]


def histogram(values: Sequence[float], bucket: float = 82.0) -> dict[float, int]:
    counts = Counter(math.floor(value / bucket) * bucket for value in values)
    return dict(sorted(counts.items()))


def summarize_drivers(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "mean": mean(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
    }
