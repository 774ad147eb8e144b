"""5. Ingest: the WM absorbing floods of child `$/progress`, 4 projects at once.

Each runner's `flood` handler begins a normal progress scope, then writes N raw reports behind
the API's back (no coalescing in the runner). Measured per run: child messages absorbed per
second of wall time, what the editor got (rate, final state), and the WM's CPU time — compared
with a naive forwarder (`naive_forwarder.py`) that reads the same child streams from the same
runners and forwards every message (json.loads + json.dumps + buffered write). WM and naive
runs are interleaved.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from .common import REPO, Figure, figure, ratio_samples
from .wm_client import BatchRun, WMClient, make_workspace, remove

NAME = "ingest"
TITLE = "Ingest of child $/progress floods (4 projects)"
PROJECTS = 4


@dataclass
class Naive:
    proc: asyncio.subprocess.Process
    drain: asyncio.Task[None]

    @classmethod
    async def start(cls, roots: list[str]) -> Naive:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.naive_forwarder", *roots, cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=2**24)

        async def drain() -> None:  # the "editor": read and discard
            assert proc.stdout is not None
            while await proc.stdout.read(1 << 16):
                pass

        return cls(proc, asyncio.get_running_loop().create_task(drain()))

    async def run(self, n: int) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write(f"run flood {n}\n".encode())
        line = await asyncio.wait_for(self.proc.stderr.readline(), 120)
        if not line:
            raise RuntimeError("naive forwarder died")
        report: dict[str, float] = json.loads(line)
        return report

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 20)
        await self.drain


async def wm_flood(client: WMClient, roots: list[str], n: int) -> tuple[BatchRun, float, int]:
    """One flood through the WM: the run, the WM's CPU seconds, child messages sent."""
    cpu = client.cpu_seconds()
    run = await client.run_batch(["flood"], params={"n": n}, projects=roots,
                                 token=client.token())
    cpu = client.cpu_seconds() - cpu
    if run.result["summary"]["ok"] != len(roots):
        raise RuntimeError(f"flood failed: {run.result}")
    sent = sum(int(e["result"]["sent"]) for e in run.result["results"])
    return run, cpu, sent


async def run(quick: bool) -> list[Figure]:
    n = 25_000 if quick else 50_000
    rounds = 2 if quick else 3
    workspace = make_workspace(PROJECTS, prefix="fcbench-ingest-")
    roots = [str(workspace / f"p{i:03d}") for i in range(PROJECTS)]
    client = WMClient()
    naive: Naive | None = None
    wm_runs: list[tuple[BatchRun, float, int]] = []
    naive_runs: list[dict[str, float]] = []
    try:
        await client.start(workspace, options={"maxParallel": PROJECTS})
        naive = await Naive.start(roots)
        await wm_flood(client, roots, 2_000)  # warm both paths
        await naive.run(2_000)
        for i in range(rounds):
            if i % 2 == 0:
                wm_runs.append(await wm_flood(client, roots, n))
                naive_runs.append(await naive.run(n))
            else:
                naive_runs.append(await naive.run(n))
                wm_runs.append(await wm_flood(client, roots, n))
    finally:
        if naive is not None:
            await naive.stop()
        await client.stop()
        remove(workspace)
    rates = [sent / run.seconds for run, _, sent in wm_runs]
    editor_rates = [len(run.paced_reports()) / run.seconds for run, _, _ in wm_runs]
    window = [float(run.max_reports_in(1.0)) for run, _, _ in wm_runs]
    finals = [run.last_report_before_end() for run, _, _ in wm_runs]
    exact = all(f is not None and f.get("percentage") == 100 for f in finals)
    wm_cpu = [cpu for _, cpu, _ in wm_runs]
    naive_cpu = [r["cpu"] for r in naive_runs]
    per_msg_wm = [cpu / sent * 1e6 for _, cpu, sent in wm_runs]
    per_msg_naive = [r["cpu"] / r["forwarded"] * 1e6 for r in naive_runs]
    return [
        figure(NAME, "child msgs absorbed by the WM", "msg/s", rates, goal_min=50_000,
               note=f"{PROJECTS} runners × {n:,} raw reports each, maxParallel={PROJECTS}"),
        figure(NAME, "naive forwarder throughput", "msg/s",
               [r["forwarded"] / r["wall"] for r in naive_runs]),
        figure(NAME, "editor reports per second (one token)", "msg/s", editor_rates,
               goal_max=10.5, goal="≤ ~10",
               note="paced reports / wall; the final flush before end excluded"),
        figure(NAME, "most editor reports within any 1 s", "msgs", window, goal_max=11,
               goal="≤ ~10", note="arrival times at the editor; jitter of the busy WM included"),
        figure(NAME, "final state exact (last report before end = 100%)", "bool",
               [1.0 if exact else 0.0], goal_min=1, goal="yes",
               note=f"last reports: {[f.get('percentage') if f else None for f in finals]}"),
        figure(NAME, "WM CPU time per flood run", "s", wm_cpu),
        figure(NAME, "naive forwarder CPU time per run", "s", naive_cpu),
        figure(NAME, "WM CPU per child message", "µs", per_msg_wm),
        figure(NAME, "naive CPU per child message", "µs", per_msg_naive),
        figure(NAME, "CPU-time ratio WM / naive", "×", ratio_samples(wm_cpu, naive_cpu),
               note="< 1: aggregating costs less than forwarding every message"),
    ]

