"""Handlers the benchmarks run; copied into every generated project as `fcbench.py`.

Standard library only (they run inside the runner). `flood` writes raw `$/progress` values
behind the API's back (bypassing coalescing) to measure how fast the WM absorbs a child stream.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

PAYLOAD = b"x" * 1024  # blake2b of 1 KiB: ~1.2 µs on the reference machine


async def trivial(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    async with ctx.progress("Trivial", total=1) as progress:
        await progress.advance()
    return {"ok": True}


async def steps(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    n = int(params.get("n", 100_000))
    digest = b""
    async with ctx.progress("Hashing", total=n) as progress:
        for _ in range(n):
            digest = hashlib.blake2b(PAYLOAD).digest()
            await progress.advance()
    return {"steps": n, "digest": digest.hex()[:8]}


async def flood(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    n = int(params.get("n", 100_000))
    chunk = int(params.get("chunk", 256))
    async with ctx.progress("Flood", total=n):
        emit = ctx._reporter._emit
        for i in range(n):
            emit({"kind": "report", "total": n, "done": i + 1})
            if i % chunk == 0:
                await asyncio.sleep(0)  # let the pipe drain
    return {"sent": n}


async def wait(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Cooperative: sleeps in small awaits, so a cancel lands at once."""
    async with ctx.progress("Waiting", total=600, cancellable=True) as progress:
        for _ in range(600):
            await asyncio.sleep(0.05)
            await progress.advance()
    return {"waited": True}


async def block(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Uncooperative: blocks the runner's event loop, so only killing the runner stops it."""
    import time

    async with ctx.progress("Blocking", total=1):
        time.sleep(float(params.get("seconds", 30)))
    return {"blocked": True}


async def delegated(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """A no-op run through delegation: the WM runs `trivial` as a batch of its own."""
    result: dict[str, Any] = await ctx.run_action("trivial")
    return result


async def ticks(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """`n` advances `gap` s apart; returns when each one was made (perf_counter, which is the
    system's monotonic clock: the client's stamps compare with it)."""
    import time

    n, gap = int(params.get("n", 10)), float(params.get("gap", 0.05))
    made = []
    async with ctx.progress("Ticking", total=n) as progress:
        for _ in range(n):
            await asyncio.sleep(gap)
            made.append(time.perf_counter())
            await progress.advance()
    return {"advanced": made}


async def delegated_ticks(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """`ticks` through delegation, attached to the whole of a one-step scope: the editor's
    percentage is the delegated child's own."""
    async with ctx.progress("Delegating", total=1) as progress:
        result: dict[str, Any] = await ctx.run_action("ticks", params=params, progress=progress)
        await progress.advance()
    return result
