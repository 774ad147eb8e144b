"""13. Report latency: from a handler's `advance()` to the editor's `$/progress` showing it.

One project, warm runners. The `ticks` handler advances `n` times, `gap` s apart, and returns
when it made each advance; the client stamps each editor report on arrival (the same monotonic
clock). An advance's latency is the time to the first report whose percentage reaches
floor(100 × k / n). Direct: `ticks` itself. Delegated: `delegated_ticks`, whose scope of one
step is attached to a `ctx.run_action("ticks")`, so the editor shows the same percentages
after two more paced stages (the WM's delegated stream, the delegating runner's stream).

Two cadences: *sparse* (advances 0.2 s apart: every stage has been quiet for a pacing period,
so a change should go straight through) and *dense* (0.03 s apart: stages coalesce; an advance
waits for the editor's next report slot). The goal is one pacing period (0.1 s) + 20 ms at the
median. The final advance is left out (100 % waits for the answer by rule).
"""

from __future__ import annotations

import math
from typing import Any

from .common import Figure, figure
from .wm_client import BatchRun, WMClient, make_workspace, remove

NAME = "report_latency"
TITLE = "Report latency: advance() → editor report (direct and delegated)"
GOAL_MS = 120  # one pacing period + 20 ms
CADENCES = {"sparse": {"n": 8, "gap": 0.2}, "dense": {"n": 40, "gap": 0.03}}


def latencies(run: BatchRun, advanced: list[float], n: int) -> list[float]:
    """Seconds from each advance (but the last) to the first report that shows it."""
    reports = [(t, v["percentage"]) for t, v in run.progress
               if v.get("kind") in ("begin", "report") and "percentage" in v]
    out = []
    for k, made in enumerate(advanced[:-1], start=1):
        want = math.floor(100 * k / n)
        shown = next((t for t, p in reports if p >= want and t >= made), None)
        if shown is None:
            raise RuntimeError(f"advance {k}/{n} never reached the editor: {run.progress}")
        out.append(shown - made)
    return out


def _advanced(run: BatchRun, delegated: bool) -> list[float]:
    (entry,) = run.result["results"]
    if entry["status"] != "ok":
        raise RuntimeError(f"{entry}")
    result: dict[str, Any] = entry["result"]
    if delegated:
        (inner,) = result["results"]
        result = inner["result"]
    made: list[float] = result["advanced"]
    return made


def _p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


async def run(quick: bool) -> list[Figure]:
    rounds = 3 if quick else 6
    workspace = make_workspace(1, prefix="fcbench-replat-")
    client = WMClient()
    samples: dict[tuple[str, str], list[float]] = {}
    try:
        await client.start(workspace, options={"warmRunners": False})
        await client.warm_up("delegated_ticks", rounds=2)
        for i in range(rounds):
            for cadence, params in CADENCES.items():
                order = [("direct", "ticks"), ("delegated", "delegated_ticks")]
                for path, action in order if i % 2 == 0 else order[::-1]:
                    run = await client.run_batch([action], params=params, token=client.token())
                    made = _advanced(run, path == "delegated")
                    samples.setdefault((cadence, path), []).extend(
                        s * 1000 for s in latencies(run, made, int(params["n"])))
    finally:
        await client.stop()
        remove(workspace)
    figures = []
    for (cadence, path), values in samples.items():
        gap = CADENCES[cadence]["gap"]
        figures.append(figure(NAME, f"{cadence} ({gap:g} s apart), {path}", "ms", values,
                              goal_max=GOAL_MS, p90=_p90(values)))
        figures.append(figure(NAME, f"{cadence} ({gap:g} s apart), {path}: p90", "ms",
                              _p90(values)))
    return figures
