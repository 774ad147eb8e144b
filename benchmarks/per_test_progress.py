"""13. The example `test` action against plain `pytest -q` on the same projects.

4 generated projects × N trivial tests (the worst case for a per-test cost: the tests themselves
cost next to nothing). Three ways, interleaved per round, each project after the other:

- `plain`: `python -m pytest -q` in each project;
- `handler`: the `test` handler in this process with a progress token (pytest in a child with the
  events plugin, one event per test on its pipe, one `advance` per test, reports paced as in a
  runner);
- `finecode`: `runBatch test` through a warm `finecode-wm lsp` (`concurrent: false`, so the
  projects run one after another as in `plain`), with a progress token.

Third-party pytest plugins are off in all three (`PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`), so the
comparison is pytest against pytest plus FineCode's part; compiled modules are cached, as on a
user's machine (`PYTHONDONTWRITEBYTECODE` is dropped for the children). Wall time on a shared
machine is noisy, so the CPU time of the pytest children (`plain` vs `handler`, from
`RUSAGE_CHILDREN`) and of this process while the handler consumed the events are reported too.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from finecode_examples import testing

from finecode_er.api import RunActionContext
from finecode_er.reporter import ExecutionReporter

from .common import Figure, figure, now, ratio_samples
from .wm_client import WMClient, remove

NAME = "per_test_progress"
TITLE = "Per-test progress of the example test action vs plain pytest -q"
PROJECTS = 4
NO_PLUGINS = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
TESTS = """import pytest


@pytest.mark.parametrize("n", range({count}))
def test_square(n):
    assert n * n >= 0
"""
PYPROJECT = """[project]
name = "{name}"
version = "0"

[[tool.finecode.actions.test.handlers]]
source = "finecode_examples.testing:test"
config = {{ env = {{ PYTEST_DISABLE_PLUGIN_AUTOLOAD = "1" }} }}
"""


def make_projects(root: Path, tests: int) -> list[Path]:
    projects = []
    for i in range(PROJECTS):
        project = root / f"p{i}"
        (project / "tests").mkdir(parents=True)
        (project / "tests" / "test_square.py").write_text(TESTS.format(count=tests))
        (project / "pyproject.toml").write_text(PYPROJECT.format(name=f"p{i}"))
        projects.append(project)
    return projects


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Measured:
    """Samples of one variant: wall seconds, CPU of the pytest children, CPU of this process."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.pytest_cpu: list[float] = []
        self.own_cpu: list[float] = []


async def plain(projects: list[Path], into: Measured) -> None:
    env = {**os.environ, **NO_PLUGINS}
    start, cpu = now(), children_cpu()
    for project in projects:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pytest", "-q", cwd=project, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        if await proc.wait() != 0:
            raise RuntimeError(f"pytest failed in {project}")
    into.wall.append(now() - start)
    into.pytest_cpu.append(children_cpu() - cpu)


async def handler(projects: list[Path], into: Measured, reports: list[int]) -> None:
    start, cpu, own = now(), children_cpu(), time.process_time()
    for project in projects:
        sent: list[dict[str, Any]] = []
        reporter = ExecutionReporter(sent.append, title="test", handlers=1)
        ctx = RunActionContext(project_root=project, config={"env": NO_PLUGINS}, action="test",
                               reporter=reporter, work=reporter.handler_work())
        result = await testing.test({}, ctx)
        reporter.finish("done")
        if result["passed"] != result["collected"]:
            raise RuntimeError(f"the test handler failed in {project}: {result['summary']}")
        reports.append(len(sent))
    into.wall.append(now() - start)
    into.pytest_cpu.append(children_cpu() - cpu)
    into.own_cpu.append(time.process_time() - own)


async def through_wm(client: WMClient, tests: int, into: Measured) -> None:
    run = await client.run_batch(["test"], token=client.token(), options={"concurrent": False})
    passed = [e["result"]["passed"] for e in run.result["results"] if e["status"] == "ok"]
    if passed != [tests] * PROJECTS:
        raise RuntimeError(f"runBatch test failed: {run.result['summary']}")
    into.wall.append(run.seconds)


async def run(quick: bool) -> list[Figure]:
    rounds, tests = (3, 300) if quick else (9, 500)
    # As on a user's machine, compiled modules are cached: with PYTHONDONTWRITEBYTECODE set
    # (some sandboxes set it) the plugin, an editable source file here, would be compiled and
    # assertion-rewritten again on every run, while pip compiled pytest's own files at install.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    root = Path(tempfile.mkdtemp(prefix="fcbench-tests-"))
    projects = make_projects(root, tests)
    client = WMClient()
    bare, ours, wm, warm = Measured(), Measured(), Measured(), Measured()
    reports: list[int] = []
    try:
        await client.start(root, options={"warmRunners": False})
        await through_wm(client, tests, warm)  # runners up, handler imported
        await plain(projects, warm)  # pytest's own files cached alike for all three
        for i in range(rounds):
            variants = [lambda: plain(projects, bare),
                        lambda: handler(projects, ours, reports),
                        lambda: through_wm(client, tests, wm)]
            for measure in variants[i % 3:] + variants[: i % 3]:
                await measure()
    finally:
        await client.stop()
        remove(root)
    count = PROJECTS * tests
    return [
        figure(NAME, f"plain pytest -q, {PROJECTS} × {tests} tests", "s", bare.wall),
        figure(NAME, "test handler (events plugin, one advance per test)", "s", ours.wall),
        figure(NAME, "finecode-wm runBatch test (warm, sequential)", "s", wm.wall),
        figure(NAME, "handler / plain (wall)", "×", ratio_samples(ours.wall, bare.wall),
               goal_max=1.05),
        figure(NAME, "finecode-wm / plain (wall)", "×", ratio_samples(wm.wall, bare.wall),
               goal_max=1.05),
        figure(NAME, "pytest CPU with the plugin / without", "×",
               ratio_samples(ours.pytest_cpu, bare.pytest_cpu), goal_max=1.05,
               note="user + system time of the pytest children: the plugin's share, "
                    "without the scheduling noise of a shared machine"),
        figure(NAME, "event handling in the handler's process, per test", "µs",
               [cpu / count * 1e6 for cpu in ours.own_cpu],
               note="reading, parsing and folding one event, advance and paced reports; "
                    "runs beside pytest, on another core when there is one"),
        figure(NAME, "reports sent per project run", "reports", reports,
               note=f"{tests} tests per project; reports are paced to ≤ 10 a second"),
    ]
