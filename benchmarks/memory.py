"""7. Memory: is the WM's RSS flat over many runs and many forwarded child messages?

Part A: sequential `runBatch` of the trivial action across 8 projects (with a token), sampling
the WM's RSS at 0, 25, 50, 75 and 100 % of the runs. Part B: floods of raw child `$/progress`
(4 runners at once) until ~1,000,000 child messages went through, sampled likewise. Samples are
taken between runs, after warm-up; "growth" is (max − first) / first.
"""

from __future__ import annotations

from .common import MB, Figure, figure
from .wm_client import Sampler, WMClient, make_workspace, remove

NAME = "memory"
TITLE = "WM memory over many runs and messages"
PROJECTS = 8
FLOOD_PROJECTS = 4


def _growth(samples: list[float]) -> float:
    return (max(samples) - samples[0]) / samples[0] * 100


async def run(quick: bool) -> list[Figure]:
    runs = 500 if quick else 1000
    messages = 400_000 if quick else 1_000_000
    steps = 4
    workspace = make_workspace(PROJECTS, prefix="fcbench-mem-")
    flood_roots = [str(workspace / f"p{i:03d}") for i in range(FLOOD_PROJECTS)]
    client = WMClient()
    runs_rss: list[float] = []
    flood_rss: list[float] = []
    try:
        await client.start(workspace, options={"maxParallel": FLOOD_PROJECTS})
        await client.warm_up(rounds=20)
        await client.run_batch(["flood"], params={"n": 5_000}, projects=flood_roots,
                               token=client.token())
        runs_rss.append(client.rss() / MB)
        for _ in range(steps):
            for _ in range(runs // steps):
                await client.run_batch(["trivial"], token=client.token())
            runs_rss.append(client.rss() / MB)
        per_runner = messages // steps // FLOOD_PROJECTS
        flood_rss.append(client.rss() / MB)
        with Sampler(client, interval=0.05) as sampler:
            for _ in range(steps):
                run = await client.run_batch(["flood"], params={"n": per_runner},
                                             projects=flood_roots, token=client.token())
                if run.result["summary"]["ok"] != FLOOD_PROJECTS:
                    raise RuntimeError(f"flood failed: {run.result['summary']}")
                flood_rss.append(client.rss() / MB)
    finally:
        await client.stop()
        remove(workspace)
    marks = ", ".join(f"{v:.1f}" for v in runs_rss)
    flood_marks = ", ".join(f"{v:.1f}" for v in flood_rss)
    return [
        figure(NAME, f"WM RSS over {runs:,} runBatch runs", "MB", runs_rss,
               note=f"8 projects, trivial action; samples at 0/25/50/75/100 %: {marks} MB"),
        figure(NAME, "RSS growth over the runs", "%", _growth(runs_rss), goal_max=10),
        figure(NAME, f"WM RSS over {messages:,} forwarded child messages", "MB", flood_rss,
               note=f"{FLOOD_PROJECTS} runners × {per_runner:,} × {steps}; samples: "
                    f"{flood_marks} MB; peak during floods {sampler.peak_rss / MB:.1f} MB"),
        figure(NAME, "RSS growth over the messages", "%", _growth(flood_rss), goal_max=10),
    ]
