"""6. Scale: one trivial action across 1, 8, 32 and 128 generated projects on one interpreter.

Per size, a fresh WM (`warmRunners: false`, default maxParallel = CPU count): the first run
(cold, starts the runners) and warm runs after it. A sampler polls the WM every 20 ms for its
RSS and its child processes (the runners); runner RSS is summed after the runs. The projects
share one environment, so the runners are bounded by maxParallel, not by the project count.
"""

from __future__ import annotations

import os

from .common import MB, Figure, figure
from .wm_client import Sampler, WMClient, make_workspace, remove

NAME = "scale"
TITLE = "Scale (1 → 128 projects)"
SIZES = [1, 8, 32, 128]

async def run(quick: bool) -> list[Figure]:
    warm_runs = 3 if quick else 15  # warm runs are short: enough of them for a steady median
    figures: list[Figure] = []
    for size in SIZES:
        workspace = make_workspace(size, prefix=f"fcbench-scale{size}-")
        client = WMClient()
        try:
            await client.start(workspace, options={"warmRunners": False})
            with Sampler(client) as sampler:
                cold = await client.run_batch(["trivial"], token=client.token())
                warm = [await client.run_batch(["trivial"], token=client.token())
                        for _ in range(warm_runs)]
                runner_rss = client.runner_rss() / MB
                runners_now = len(client.runner_processes())
        finally:
            await client.stop()
            remove(workspace)
        for r in [cold, *warm]:
            if r.result["summary"]["ok"] != size:
                raise RuntimeError(f"trivial failed at {size} projects: {r.result['summary']}")
        label = f"{size} project{'s' if size > 1 else ''}"
        last = size == SIZES[-1]
        figures += [
            figure(NAME, f"{label}: cold run wall", "ms", cold.seconds * 1000,
                   goal_max=1000 if last else None),
            figure(NAME, f"{label}: warm run wall", "ms", [r.seconds * 1000 for r in warm],
                   goal_max=100 if last else None),
            figure(NAME, f"{label}: peak WM RSS", "MB", sampler.peak_rss / MB),
            figure(NAME, f"{label}: total runner RSS", "MB", runner_rss,
                   goal_max=60 if last else None,
                   note=f"{runners_now} runners alive after the runs, "
                        f"{runner_rss / max(runners_now, 1):.1f} MB each" if last else ""),
            figure(NAME, f"{label}: peak runner processes", "procs", sampler.peak_runners,
                   goal_max=(os.cpu_count() or 2) + 1 if last else None,
                   note="one environment: at most maxParallel runners (+1 being replaced)"
                   if last else ""),
        ]
    return figures
