"""9. MCP front end: progress rate during a flood, and a call's cost against the CLI.

Not `mcp.py`: run as `python benchmarks/run.py`, this directory comes first on `sys.path` and
that name would shadow the MCP SDK.

- Flood: two projects whose `flood` handler writes raw progress values as fast as the pipe
  takes them. The call carries a progress token; counted are the `notifications/progress` the
  SDK client receives, per second of the call and in the busiest 1-s window (goal ≤ ~10).
- Overhead: the same batch (`steps`, two projects) through `finecode-wm run --json` (a process
  per run: start, runners, result, exit) and through MCP, interleaved. Cold MCP spawns the
  server, initializes and calls; warm MCP is a call on a running server with warm runners (what
  an agent pays after its first call).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from .common import Figure, figure, now, ratio_samples
from .wm_client import make_workspace, remove

NAME = "mcp_call"
TITLE = "MCP: progress rate in a flood, call overhead vs the CLI"
FLOOD_N = 50_000
STEPS_N = 20_000


def _server(workspace: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "finecode_wm", "mcp", "--workspace", str(workspace)])


async def _call(session: ClientSession, arguments: dict[str, Any],
                stamps: list[float] | None = None) -> dict[str, Any]:
    async def progress(_value: float, _total: float | None, _message: str | None) -> None:
        assert stamps is not None
        stamps.append(now())

    result = await session.call_tool("run_actions", arguments,
                                     progress_callback=progress if stamps is not None else None)
    structured: dict[str, Any] = result.structured_content
    if result.is_error or structured["summary"]["ok"] != 2:
        raise RuntimeError(f"MCP run failed: {result.content}")
    return structured


def _busiest_second(stamps: list[float]) -> int:
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] > 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _cli(workspace: Path) -> float:
    started = now()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "finecode_wm", "run", "steps", "--json", "--workspace",
        str(workspace), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    if await proc.wait() != 0:
        raise RuntimeError("finecode-wm run steps failed")
    return now() - started


async def _mcp_cold(workspace: Path, errlog: Any) -> float:
    started = now()
    async with stdio_client(_server(workspace), errlog=errlog) as (read, write), ClientSession(
            read, write) as session:
        await session.initialize()
        await _call(session, {"actions": ["steps"], "params": {"n": STEPS_N}})
        return now() - started


async def run(quick: bool) -> list[Figure]:
    rounds = 3 if quick else 7
    workspace = make_workspace(2, prefix="fcbench-mcp-")
    rates: list[float] = []
    busiest: list[float] = []
    cli: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    try:
        with open("/dev/null", "w") as errlog:  # noqa: ASYNC230 (opening /dev/null)
            async with stdio_client(_server(workspace), errlog=errlog) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                await _call(session, {"actions": ["trivial"]})  # runners up
                for _ in range(rounds):
                    stamps: list[float] = []
                    await _call(session, {"actions": ["flood"], "params": {"n": FLOOD_N}},
                                stamps)
                    # the paced stream: begin and the final notification go out undelayed
                    if len(stamps) >= 3 and stamps[-1] > stamps[0]:
                        rates.append((len(stamps) - 2) / (stamps[-1] - stamps[0]))
                    busiest.append(_busiest_second(stamps))
                for i in range(rounds):
                    variants = [("cli", cli), ("cold", cold), ("warm", warm)]
                    for name, samples in variants[i % 3:] + variants[:i % 3]:
                        if name == "cli":
                            samples.append(await _cli(workspace))
                        elif name == "cold":
                            samples.append(await _mcp_cold(workspace, errlog))
                        else:
                            started = now()
                            await _call(session, {"actions": ["steps"],
                                                  "params": {"n": STEPS_N}})
                            samples.append(now() - started)
    finally:
        remove(workspace)
    return [
        figure(NAME, "flood: notifications/progress per second", "msg/s", rates,
               goal_max=10.5, goal="≤ ~10",
               note=f"2 projects × {FLOOD_N:,} raw child values; the notifications between the "
                    "first and the last, per second between them"),
        figure(NAME, "flood: notifications in the busiest 1 s", "msgs", busiest, goal_max=12,
               goal="≤ ~10 (+ begin, end)"),
        figure(NAME, "CLI `run steps --json` (process per run)", "ms", [s * 1000 for s in cli],
               note=f"2 projects × {STEPS_N:,} steps; spawn → exit"),
        figure(NAME, "MCP cold: spawn, initialize, call", "ms", [s * 1000 for s in cold]),
        figure(NAME, "MCP warm call (running server)", "ms", [s * 1000 for s in warm]),
        figure(NAME, "ratio MCP cold / CLI", "×", ratio_samples(cold, cli)),
        figure(NAME, "ratio MCP warm / CLI", "×", ratio_samples(warm, cli)),
    ]
