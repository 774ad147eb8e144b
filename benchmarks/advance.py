"""2. `advance()` overhead in a tight loop, in-process (no subprocess, no pipe).

The handler is `bench_handlers.steps`: N steps of blake2b over 1 KiB (~1.2 µs each) with
`await progress.advance()` per step. Three variants, interleaved round by round:

- token:  an `ExecutionReporter` emitting into a sink that only counts values;
- none:   a `NullReporter` (the caller asked for no progress: same code, nothing sent);
- bare:   the same loop with no progress calls at all.

The context is built the way `finecode_er/runner.py` builds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from finecode_er.api import RunActionContext
from finecode_er.reporter import ExecutionReporter, NullReporter
from finecode_er.streams import Value

from .bench_handlers import PAYLOAD, steps
from .common import Figure, figure, now, ratio_samples

NAME = "advance"
TITLE = "advance() overhead (in-process)"
N = 100_000


async def bare(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    n = int(params.get("n", 100_000))
    digest = b""
    for _ in range(n):
        digest = hashlib.blake2b(PAYLOAD).digest()
    return {"steps": n, "digest": digest.hex()[:8]}


async def _execute(root: Path, reporter: ExecutionReporter, handler: Any) -> float:
    """One execution as the runner does it: ctx per handler, finish work, finish reporter."""
    ctx = RunActionContext(project_root=root, config={}, action="bench", reporter=reporter,
                           work=reporter.handler_work())
    start = now()
    try:
        await handler({"n": N}, ctx)
    finally:
        ctx._work.finish()
        reporter.touch()
        reporter.finish("done")
    return now() - start


async def run(quick: bool) -> list[Figure]:
    rounds = 5 if quick else 9
    emitted: list[int] = []
    token_s: list[float] = []
    none_s: list[float] = []
    bare_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fcbench-adv-") as tmp:
        root = Path(tmp)

        async def with_token() -> None:
            count = 0

            def sink(_value: Value) -> None:
                nonlocal count
                count += 1

            token_s.append(await _execute(root, ExecutionReporter(sink, title="bench",
                                                                  handlers=1), steps))
            emitted.append(count)

        async def without_token() -> None:
            none_s.append(await _execute(root, NullReporter(handlers=1), steps))

        async def bare_loop() -> None:
            bare_s.append(await _execute(root, NullReporter(handlers=1), bare))

        variants = [with_token, without_token, bare_loop]
        await with_token()  # warm-up, discarded
        token_s.clear()
        emitted.clear()
        for i in range(rounds):
            for variant in variants[i % 3:] + variants[:i % 3]:
                await variant()
                await asyncio.sleep(0)
    per_step = [s / N * 1e6 for s in bare_s]
    expected = [s / 0.1 for s in token_s]
    return [
        figure(NAME, "bare loop (blake2b 1 KiB per step), per step", "µs", per_step,
               note=f"N={N:,} steps"),
        figure(NAME, "with token: wall", "ms", [s * 1000 for s in token_s]),
        figure(NAME, "no token (NullReporter): wall", "ms", [s * 1000 for s in none_s]),
        figure(NAME, "bare loop: wall", "ms", [s * 1000 for s in bare_s]),
        figure(NAME, "advance() cost with token, per call", "µs",
               [(t - b) / N * 1e6 for t, b in zip(token_s, bare_s, strict=True)]),
        figure(NAME, "ratio with-token / no-token", "×", ratio_samples(token_s, none_s),
               goal_max=1.2),
        figure(NAME, "ratio with-token / bare", "×", ratio_samples(token_s, bare_s),
               goal_max=1.2),
        figure(NAME, "values emitted per run (with token)", "values", emitted,
               note=f"expected ≈ wall/0.1 s + begin/end ≈ {min(expected):.1f}–"
                    f"{max(expected):.1f} + 2"),
    ]
