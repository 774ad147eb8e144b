"""4. Latency of a trivial action across 8 projects: request → response and request → begin.

Warm: one WM, runners warm, many runs. Cold: a fresh WM per run started with
`initializationOptions: {"warmRunners": false}`, so the request pays for starting 8 runners.
With ≥ 2 children the WM begins the editor's stream at once (DESIGN rule 4).
"""

from __future__ import annotations

import asyncio

from .common import Figure, figure
from .wm_client import BatchRun, WMClient, make_workspace, remove

NAME = "latency"
TITLE = "Latency (8 projects, trivial action)"
PROJECTS = 8


def _begin_ms(run: BatchRun) -> float:
    begin = run.first("begin")
    if begin is None:
        raise RuntimeError("no begin on the editor token")
    return (begin - run.sent) * 1000


def _check(run: BatchRun) -> None:
    if run.result["summary"]["ok"] != PROJECTS:
        raise RuntimeError(f"trivial failed: {run.result['summary']}")


async def run(quick: bool) -> list[Figure]:
    warm_runs = 30 if quick else 60
    cold_runs = 3 if quick else 5
    workspace = make_workspace(PROJECTS, prefix="fcbench-lat-")
    warm: list[BatchRun] = []
    cold: list[BatchRun] = []
    try:
        client = WMClient()
        try:
            await client.start(workspace)
            await client.warm_up(rounds=3)
            for _ in range(warm_runs):
                warm.append(await client.run_batch(["trivial"], token=client.token()))
        finally:
            await client.stop()
        for _ in range(cold_runs):
            client = WMClient()
            try:
                await client.start(workspace, options={"warmRunners": False})
                await asyncio.sleep(0.3)  # the WM has scanned the folder and is idle
                cold.append(await client.run_batch(["trivial"], token=client.token()))
            finally:
                await client.stop()
    finally:
        remove(workspace)
    for r in warm + cold:
        _check(r)
    return [
        figure(NAME, "warm request → response", "ms", [r.seconds * 1000 for r in warm],
               goal_max=50),
        figure(NAME, "warm request → begin", "ms", [_begin_ms(r) for r in warm], goal_max=50),
        figure(NAME, "cold request → response", "ms", [r.seconds * 1000 for r in cold],
               goal_max=1000, note="fresh WM, warmRunners=false: starts 8 runners"),
        figure(NAME, "cold request → begin", "ms", [_begin_ms(r) for r in cold], goal_max=250),
    ]
