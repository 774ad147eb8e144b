"""3. Full path overhead, editor → WM → runner, of a handler reporting progress per step.

One project whose `steps` handler does N steps (blake2b of 1 KiB) with `advance()` per step.
`runBatch` with a `workDoneToken` vs without, interleaved, runners warm. The runner reports on
the WM's child token either way; the difference is what the WM does for the editor's stream.
"""

from __future__ import annotations

from .common import Figure, figure, ratio_samples
from .wm_client import BatchRun, WMClient, make_workspace, remove

NAME = "full_path"
TITLE = "Full path overhead (editor → WM → runner)"
N = 100_000


async def run(quick: bool) -> list[Figure]:
    pairs = 5 if quick else 9
    workspace = make_workspace(1, prefix="fcbench-path-")
    client = WMClient()
    try:
        await client.start(workspace)
        for _ in range(2):  # warm runner, imported handler, warm caches
            await client.run_batch(["steps"], params={"n": N})
        with_token: list[BatchRun] = []
        without: list[BatchRun] = []
        for i in range(pairs):
            first_with = i % 2 == 0
            for use_token in (first_with, not first_with):
                if use_token:
                    with_token.append(await client.run_batch(["steps"], params={"n": N},
                                                             token=client.token()))
                else:
                    without.append(await client.run_batch(["steps"], params={"n": N}))
    finally:
        await client.stop()
        remove(workspace)
    for r in with_token + without:
        if r.result["summary"]["ok"] != 1:
            raise RuntimeError(f"steps failed: {r.result}")
    w = [r.seconds for r in with_token]
    wo = [r.seconds for r in without]
    messages = [len(r.progress) for r in with_token]
    reports_per_s = [len(r.paced_reports()) / r.seconds for r in with_token]
    ends_ok = all(r.progress and r.progress[-1][1].get("kind") == "end" for r in with_token)
    return [
        figure(NAME, "runBatch wall, with workDoneToken", "ms", [s * 1000 for s in w],
               note=f"N={N:,} steps in one project, warm runner"),
        figure(NAME, "runBatch wall, without token", "ms", [s * 1000 for s in wo]),
        figure(NAME, "ratio with-token / without", "×", ratio_samples(w, wo), goal_max=1.05),
        figure(NAME, "$/progress messages per run (editor)", "msgs", messages,
               note="begin + reports + end; stream ended before response: "
                    f"{'yes' if ends_ok else 'NO'}"),
        figure(NAME, "editor reports per second", "msg/s", reports_per_s, goal_max=10.5,
               goal="≤ ~10", note="paced reports / wall; the final flush before end excluded"),
    ]
