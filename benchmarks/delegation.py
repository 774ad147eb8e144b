"""10. Delegation: a no-op run through `ctx.run_action` against the same run done directly.

One project, warm runner. `trivial` directly vs `delegated` (a handler whose only work is
`await ctx.run_action("trivial")`: one more round trip runner → WM → runner and a batch of its
own), interleaved in one WM session.
"""

from __future__ import annotations

from .common import Figure, figure
from .wm_client import WMClient, make_workspace, remove

NAME = "delegation"
TITLE = "Delegation overhead (1 project, warm)"


async def run(quick: bool) -> list[Figure]:
    rounds = 30 if quick else 100
    workspace = make_workspace(1, prefix="fcbench-deleg-")
    client = WMClient()
    direct: list[float] = []
    delegated: list[float] = []
    try:
        await client.start(workspace, options={"warmRunners": False})
        await client.warm_up("delegated", rounds=3)
        order = [("trivial", direct), ("delegated", delegated)]
        for i in range(rounds):  # alternate the order so drift hits both alike
            for action, samples in (order if i % 2 == 0 else order[::-1]):
                run = await client.run_batch([action], token=client.token())
                if run.result["summary"]["ok"] != 1:
                    raise RuntimeError(f"{action} failed: {run.result}")
                samples.append(run.seconds * 1000)
    finally:
        await client.stop()
        remove(workspace)
    extra = [d - t for d, t in zip(delegated, direct, strict=True)]
    return [
        figure(NAME, "direct no-op run", "ms", direct),
        figure(NAME, "delegated no-op run", "ms", delegated),
        figure(NAME, "cost of delegating (per-pair difference)", "ms", extra,
               note="one runAction round trip and a one-child batch in the WM"),
    ]
