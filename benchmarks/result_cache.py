"""16. The 72-project monorepo: FineCode against ruff, cold, warm (result cache) and one edit.

The workspace comes from `monorepo.py` (72 projects, 8–13 `.py` files each, the example ruff
`lint` with E and F, a few hundred findings). In the same run, interleaved:

- `ruff check` once over the whole workspace, and ruff once per project (one process each, one
  after another, from the project's directory, as a shell loop would);
- `finecode-wm run lint` cold (an empty cache directory: no results, no history, no digest
  index) and warm (the cache filled by the previous run, nothing changed), each a new process
  with no daemon running;
- `finecode-wm run lint` warm through `finecode-wm daemon` (started once before: each run is
  still a new caller process, answered by the daemon), in rounds of its own, each beside one
  `ruff check` over the whole workspace: two runs of ~0.1 s each, so more of them, side by
  side, give a ratio the shared machine's load moves less;
- a warm editor server (`finecode-wm lsp`): `runBatch lint` after one file of one project was
  edited (each round edits another project, so each is one real run and 71 cached children).

Every run's findings are compared: FineCode's cold and warm listings are identical line for
line, and each run finds what ruff finds. Children run as a person's would, with Python's
bytecode cache on (`PYTHONDONTWRITEBYTECODE` removed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import Figure, figure, interleave, now, ratio_samples
from .monorepo import generate
from .wm_client import WMClient

NAME = "result_cache"
TITLE = "72-project monorepo: cold, warm and one edit, against ruff"
RUFF = ["check", "--select", "E,F", "--no-cache", "--output-format", "concise", "--quiet"]


def _env(cache: Path, runtime: str) -> dict[str, str]:
    """`runtime`: the daemon's socket folder (an empty one: no daemon answers)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["XDG_CACHE_HOME"] = str(cache)
    env["XDG_RUNTIME_DIR"] = runtime
    return env


def _ruff() -> str:
    found = shutil.which("ruff", path=os.path.dirname(sys.executable))
    if found is None:
        raise RuntimeError("ruff is not installed next to the benchmark's interpreter")
    return found


def _finecode() -> list[str]:
    script = Path(sys.executable).parent / "finecode-wm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "finecode_wm"]


def _timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float,
                                                                                      str]:
    start = now()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    took = now() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}")
    return took, done.stdout


def _ruff_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.count(":") >= 3)


def _measure(runs: int, pairs: int, root: Path, work: Path
             ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    ruff = _ruff()
    projects = sorted(p for p in root.iterdir() if p.is_dir())
    seen: dict[str, Any] = {"ruff": set(), "listings": set()}
    caches = iter(range(10**6))
    warm_cache = work / "warm-cache"
    short = "/tmp" if os.path.isdir("/tmp") else None  # a socket's path is limited (107 bytes)
    alone = tempfile.mkdtemp(prefix="fcb-", dir=short)
    served = tempfile.mkdtemp(prefix="fcb-", dir=short)

    def one_process() -> float:
        took, out = _timed([ruff, *RUFF, "."], root)
        seen["ruff"].add(_ruff_lines(out))
        return took

    def per_project() -> float:
        start = now()
        found = 0
        for project in projects:
            found += _ruff_lines(_timed([ruff, *RUFF, "."], project)[1])
        seen["ruff"].add(found)
        return now() - start

    def cold() -> float:
        took, out = _timed([*_finecode(), "run", "lint"], root,
                           _env(work / f"cold-{next(caches)}", alone))
        seen["listings"].add(out)
        return took

    def warm() -> float:
        took, out = _timed([*_finecode(), "run", "lint"], root, _env(warm_cache, alone))
        seen["listings"].add(out)
        return took

    def daemon() -> float:
        took, out = _timed([*_finecode(), "run", "lint"], root, _env(warm_cache, served))
        seen["listings"].add(out)
        return took

    _timed([*_finecode(), "run", "lint"], root, _env(warm_cache, alone))  # fills the cache
    started = _timed([*_finecode(), "daemon", "start"], root, _env(warm_cache, served))[1]
    if "daemon started" not in started:
        raise RuntimeError(f"the daemon did not start: {started}")
    try:
        daemon()  # its first run discovers the workspace and reads the entries
        samples = interleave(runs, {"ruff_one": one_process, "ruff_each": per_project,
                                    "cold": cold, "warm": warm})
        paired = interleave(pairs, {"ruff_beside": one_process, "daemon": daemon})
        samples |= paired
        status = _timed([*_finecode(), "daemon", "status"], root, _env(warm_cache, served))[1]
        seen["served"] = status.split(" run(s) served")[0].rsplit(" ", 1)[-1]
    finally:
        _timed([*_finecode(), "daemon", "stop"], root, _env(warm_cache, served))
        for folder in (alone, served):
            shutil.rmtree(folder, ignore_errors=True)
    return samples, seen


def _edit(root: Path, i: int) -> None:
    """Round `i`: one more finding (an undefined name, F821) in a module of project `i`."""
    projects = sorted(p for p in root.iterdir() if p.is_dir())
    package = next(projects[i % len(projects)].glob("pkg*"))
    target = sorted(package.glob("*.py"))[-1]
    target.write_text(target.read_text() + f"\nEDITED_{i} = undefined_{i}\n")


async def _lsp(root: Path, cache: Path, rounds: int
               ) -> tuple[list[float], list[int], set[int]]:
    """Seconds of `runBatch lint` after one edit, children that ran, and the findings of each
    run less the ones the edits added (one per round)."""
    client = WMClient()
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        await client.start(root, options={"warmRunners": False})
    finally:
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old
    seconds: list[float] = []
    ran: list[int] = []
    findings: set[int] = set()
    try:
        await client.run_batch(["lint"])  # cold: fills the cache and starts the runners
        await client.run_batch(["lint"])  # warm
        for i in range(rounds):
            _edit(root, i)
            run = await client.run_batch(["lint"])
            entries = run.result["results"]
            seconds.append(run.seconds)
            ran.append(sum(not e.get("cached") for e in entries))
            findings.add(sum(len(e["result"]["diagnostics"]) for e in entries) - i - 1)
    finally:
        await client.stop()
    return seconds, ran, findings


async def run(quick: bool) -> list[Figure]:
    runs, pairs, rounds = (3, 7, 5) if quick else (5, 15, 12)
    work = Path(tempfile.mkdtemp(prefix="fcbench-monorepo-"))
    root = work / "ws"
    made = generate(root)
    try:
        samples, seen = await asyncio.to_thread(_measure, runs, pairs, root, work)
        lsp, ran, lsp_found = await _lsp(root, work / "lsp-cache", rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    listings = seen["listings"]
    finecode_found = {sum(1 for line in out.splitlines() if line.count(":") >= 3)
                      for out in listings}
    identical = len(listings) == 1 and \
        finecode_found == seen["ruff"] == lsp_found == {made["findings"]}
    ms = {name: [s * 1000 for s in values] for name, values in samples.items()}
    shape = (f"{made['projects']} projects, {made['files']} files, {made['findings']} findings; "
             f"{os.cpu_count()} CPUs")
    return [
        figure(NAME, "ruff check, one process over all", "ms", ms["ruff_one"], note=shape),
        figure(NAME, "ruff once per project (72 processes)", "ms", ms["ruff_each"]),
        figure(NAME, "finecode-wm run lint, cold (empty cache)", "ms", ms["cold"]),
        figure(NAME, "finecode-wm run lint, warm (nothing changed), a new process", "ms",
               ms["warm"]),
        figure(NAME, "finecode-wm run lint, warm, through finecode-wm daemon", "ms",
               ms["daemon"], note=f"runs the daemon answered: {seen['served']} of "
                                  f"{len(ms['daemon']) + 1}"),
        figure(NAME, "cold / ruff once per project", "×",
               ratio_samples(samples["cold"], samples["ruff_each"]), goal_max=1.5),
        figure(NAME, "warm, a new process / ruff one process", "×",
               ratio_samples(samples["warm"], samples["ruff_one"]),
               note="no daemon: Python's start and FineCode's imports every run"),
        figure(NAME, "warm through the daemon / ruff one process", "×",
               ratio_samples(samples["daemon"], samples["ruff_beside"]), goal_max=3.0,
               note="each daemon run beside one ruff run, in rounds of their own"),
        figure(NAME, "LSP runBatch lint after editing one file", "ms",
               [s * 1000 for s in lsp], goal_max=100,
               note=f"children that ran per round: {sorted(set(ran))}; a warm server, one "
                    "project edited per round, the other 71 from the cache"),
        figure(NAME, "findings identical on every run (cold, warm, daemon, ruff, LSP)", "runs",
               1.0 if identical else 0.0, goal_min=1,
               note=f"distinct listings: {len(listings)}; findings: FineCode "
                    f"{sorted(finecode_found)}, LSP {sorted(lsp_found)}, ruff "
                    f"{sorted(seen['ruff'])}, generated {made['findings']}"),
    ]
