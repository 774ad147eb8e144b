"""4. Latency of a trivial action across 8 projects: request → response and request → begin.

Warm: one WM, runners warm, many runs. Cold: a fresh WM per run on an untrusted workspace (the
default: no warm-up), so the first request pays for starting 8 runners. Trusted: a fresh WM
per run with `initializationOptions: {"trusted": true}`, which warms the runners after
`initialized`; the first request comes once the warm-up had time to finish, as when a person
opens a workspace and runs something a moment later. With ≥ 2 children the WM begins the
editor's stream at once (progress rule 4).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .common import Figure, figure
from .wm_client import BatchRun, WMClient, make_workspace, remove

NAME = "latency"
TITLE = "Latency (8 projects, trivial action)"
PROJECTS = 8
WARM_UP_WAIT = 1.0  # seconds after a runner process appeared: the warm-up is over


async def _first_request(workspace: Path, *, trusted: bool) -> BatchRun:
    """A fresh WM's first request, on an untrusted or a trusted (warmed) workspace."""
    client = WMClient()
    try:
        await client.start(workspace, options={"trusted": True} if trusted else {})
        if trusted:
            for _ in range(200):
                if client.runner_processes():  # one runner per environment
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("a trusted workspace was not warmed")
            await asyncio.sleep(WARM_UP_WAIT)
        else:
            await asyncio.sleep(0.3)  # the WM has scanned the folder and is idle
            if client.runner_processes():
                raise RuntimeError("an untrusted workspace started runners unasked")
        return await client.run_batch(["trivial"], token=client.token())
    finally:
        await client.stop()


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
    trusted: list[BatchRun] = []
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
            cold.append(await _first_request(workspace, trusted=False))
            trusted.append(await _first_request(workspace, trusted=True))
    finally:
        remove(workspace)
    for r in warm + cold + trusted:
        _check(r)
    return [
        figure(NAME, "warm request → response", "ms", [r.seconds * 1000 for r in warm],
               goal_max=50),
        figure(NAME, "warm request → begin", "ms", [_begin_ms(r) for r in warm], goal_max=50),
        figure(NAME, "cold request → response", "ms", [r.seconds * 1000 for r in cold],
               goal_max=1000, note="fresh WM, untrusted workspace (no warm-up): starts 8 runners"),
        figure(NAME, "cold request → begin", "ms", [_begin_ms(r) for r in cold], goal_max=250),
        figure(NAME, "trusted first request → response", "ms",
               [r.seconds * 1000 for r in trusted], goal_max=50,
               note="fresh WM, trusted=true: runners warmed after initialized"),
        figure(NAME, "trusted first request → begin", "ms", [_begin_ms(r) for r in trusted],
               goal_max=50),
    ]
