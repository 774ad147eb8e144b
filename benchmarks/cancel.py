"""8. Cancel latency: `window/workDoneProgress/cancel` → response, 2 projects.

Cooperative handlers (`wait`) learn of the cancel at their next await; uncooperative ones
(`block`, a blocking sleep) cannot, so the WM answers without waiting for them and kills their
runner after the grace period (`finecode_wm.runners.process.CANCEL_GRACE`). Also measured: how long
until that runner is gone.
"""

from __future__ import annotations

import asyncio

from finecode_wm.runners.process import CANCEL_GRACE

from .common import Figure, figure, now
from .wm_client import WMClient, make_workspace, remove

NAME = "cancel"
TITLE = "Cancel latency (2 projects)"


async def _cancel_once(client: WMClient, action: str) -> tuple[float, float | None]:
    """(ms from cancel to response, ms from cancel until a runner of the run is gone)."""
    assert client.conn is not None
    await client.run_batch(["trivial"])
    runners = {p.pid for p in client.runner_processes()}
    token = client.token()
    client.progress[token] = []
    request = asyncio.create_task(client.conn.request("runBatch", {
        "actions": [action], "workDoneToken": token}))
    while len(client.progress[token]) < 2:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)
    sent = now()
    client.conn.notify("window/workDoneProgress/cancel", {"token": token})
    result = await request
    answered = now()
    if result["summary"]["cancelled"] != 2:
        raise RuntimeError(f"cancel did not cancel: {result['summary']}")
    killed = None
    if action == "block":
        while runners <= {p.pid for p in client.runner_processes() if p.is_running()
                          and p.status() != "zombie"}:
            await asyncio.sleep(0.02)
        killed = (now() - sent) * 1000
    return (answered - sent) * 1000, killed


async def run(quick: bool) -> list[Figure]:
    rounds = 3 if quick else 5
    workspace = make_workspace(2, prefix="fcbench-cancel-")
    cooperative: list[float] = []
    blocked: list[float] = []
    killed: list[float] = []
    try:
        client = WMClient()
        try:
            await client.start(workspace)
            for _ in range(rounds):
                cooperative.append((await _cancel_once(client, "wait"))[0])
                answer, gone = await _cancel_once(client, "block")
                blocked.append(answer)
                killed.append(gone or 0.0)
        finally:
            await client.stop()
    finally:
        remove(workspace)
    grace_ms = CANCEL_GRACE * 1000
    return [
        figure(NAME, "cooperative: cancel → response", "ms", cooperative, goal_max=1000),
        figure(NAME, "uncooperative: cancel → response", "ms", blocked,
               goal_max=grace_ms + 1000),
        figure(NAME, "uncooperative: cancel → its runner killed", "ms", killed,
               note=f"grace {CANCEL_GRACE:g} s; the runner restarts on next use"),
    ]
