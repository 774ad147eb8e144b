"""Runners per environment: the pool under stress, and the real WM at workspace sizes users have.

The pool tests drive `RunnerPool` directly with real runner processes; the WM tests go through
`finecode-wm lsp` with generated workspaces (every project has its own `checks.py`).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.wm_client import WMClient
from finecode_er.wire import RpcError
from finecode_wm.runners.pool import RunnerPool
from finecode_wm.runners.process import RunnerDied, RunnerProcess
from finecode_wm.workspace import Environment

from .conftest import ER_PROJECT, FIXTURES
from .rules import check_stream, waitgone

pytestmark = pytest.mark.timeout(120)

ENV = Environment(sys.executable)
COUNT = {"handlers": [{"source": "probe_handlers:count"}]}


@pytest.fixture(autouse=True)
def probe_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))



@pytest.fixture
async def pool() -> AsyncIterator[RunnerPool]:
    p = RunnerPool(lambda _m: None, per_environment=3, max_runners=4)
    yield p
    pids = p.pids()
    await p.stop_all()
    assert await waitgone(pids), "stop_all leaves no runner behind"
    assert p.pids() == []


async def test_a_delegated_child_never_shares_a_runner_with_its_ancestors() -> None:
    """Over `per_environment` if it must (the runners a delegation chain needs), and no more."""
    pool = RunnerPool(lambda _m: None, per_environment=1, max_runners=4)
    try:
        async with pool.lease(ENV) as parent:
            assert not pool.has_ready(ENV, avoid={parent})
            async with pool.lease(ENV, avoid={parent}) as child:
                assert child is not parent
                async with pool.lease(ENV, avoid={parent}) as sibling:
                    assert sibling is child, "a second child shares the child's runner"
                async with pool.lease(ENV, avoid={parent, child}) as grandchild:
                    assert grandchild not in (parent, child)
        assert len(pool.runners()) == 3
        assert sum(r.state.leases for r in pool.runners()) == 0
    finally:
        pids = pool.pids()
        await pool.stop_all()
        assert await waitgone(pids)


def run_params(**params: Any) -> dict[str, Any]:
    return {"action": "count", "projectRoot": str(ER_PROJECT), "actionConfig": COUNT,
            "params": params}


async def test_many_leases_with_random_cancels_keep_the_books(pool: RunnerPool) -> None:
    """60 executions at once on one environment, a third of them cancelled at random moments."""
    rng = random.Random(7)
    seen: set[int] = set()

    async def one() -> Any:
        async with pool.lease(ENV) as runner:
            assert runner.state.state == "ready", "work only ever goes to a ready runner"
            seen.add(id(runner))
            return await runner.request("run", run_params(n=3, delay=0.01))

    tasks = [asyncio.create_task(one()) for _ in range(60)]
    for task in rng.sample(tasks, 20):
        await asyncio.sleep(rng.uniform(0, 0.02))
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    ok = [r for r in results if r == {"counted": 3}]
    others = [r for r in results if r != {"counted": 3}]
    assert all(isinstance(r, asyncio.CancelledError) for r in others), others
    assert len(ok) >= 40
    assert 1 <= len(seen) <= 3, "at most per_environment runners for one environment"
    assert sum(r.state.leases for r in pool.runners()) == 0, "every lease was given back"
    assert len(pool.pids()) <= 4
    again = await asyncio.gather(*(one() for _ in range(6)))
    assert again == [{"counted": 3}] * 6, "the next requests all succeed"


async def test_idle_runners_are_evicted_over_the_cap_never_busy_ones(
        pool: RunnerPool, tmp_path: Path) -> None:
    envs = [Environment(sys.executable, tmp_path) for _ in range(1)]
    for i in range(5):
        (tmp_path / str(i)).mkdir()
        envs.append(Environment(sys.executable, tmp_path / str(i)))
    for env in envs[:4]:
        async with pool.lease(env):
            pass
    assert len(pool.runners()) == 4
    async with pool.lease(envs[4]) as busy:
        async with pool.lease(envs[5]):
            assert busy.state.state == "ready" and busy in pool.runners()
            assert len(pool.runners()) <= 4, "the least recently used idle runners went"
    assert envs[0] not in {r.environment for r in pool.runners()}


async def test_a_blocking_handler_drains_its_runner_and_the_next_request_gets_a_fresh_one(
        pool: RunnerPool) -> None:
    async with pool.lease(ENV) as first:
        hog = asyncio.create_task(first.request("run", {
            "action": "hog", "projectRoot": str(ER_PROJECT),
            "actionConfig": {"handlers": [{"source": "probe_handlers:hog"}]},
            "params": {"seconds": 30}}))
        await asyncio.sleep(0.3)
        hog.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hog
    assert first.state.state == "draining"
    async with pool.lease(ENV) as second:
        assert second is not first
        assert await second.request("run", run_params(n=1)) == {"counted": 1}
    assert first.pid is not None and await waitgone([first.pid], 5), "killed after the grace"


async def test_a_cancel_during_a_stop_still_kills_the_process() -> None:
    """The deterministic hook: cancel `stop()` at each of its awaits."""
    for cancel_after in range(4):
        runner = RunnerProcess(ENV, lambda _p: None, lambda _m: None)
        await runner.start()
        pid = runner.pid
        assert pid is not None
        stopping = runner.stop_soon()
        for _ in range(cancel_after):
            await asyncio.sleep(0)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert await waitgone([pid], 5), f"process left behind (cancelled after {cancel_after})"


async def test_after_stop_all_no_runner_starts(pool: RunnerPool) -> None:
    async with pool.lease(ENV):
        pass
    await pool.stop_all()
    with pytest.raises(RunnerDied, match="shutting down"):
        async with pool.lease(ENV):
            pass
    assert pool.pids() == []


async def test_a_crash_fails_only_the_executions_in_that_runner(pool: RunnerPool) -> None:
    async with pool.lease(ENV) as runner:
        crash = {"action": "crash", "projectRoot": str(ER_PROJECT),
                 "actionConfig": {"handlers": [{"source": "probe_handlers:crash"}]}}
        with pytest.raises(Exception, match="exited"):
            await runner.request("run", crash)
    async with pool.lease(ENV) as fresh:
        assert fresh is not runner
        assert await fresh.request("run", run_params(n=1)) == {"counted": 1}


# -- the real WM ------------------------------------------------------------------------------

CHECKS = '''
import asyncio

NAME = {name!r}

async def check(params, ctx):
    async with ctx.progress("Checking", total=4) as progress:
        for i in range(4):
            await asyncio.sleep(float(params.get("delay", 0.02)))
            await progress.advance(1, message=f"step {{i}}")
    return {{"project": NAME, "root": str(ctx.project_root)}}
'''


def make_projects(root: Path, count: int, *, extra: str = "") -> list[Path]:
    projects = []
    for i in range(count):
        project = root / f"pkg{i:02d}"
        project.mkdir(parents=True)
        (project / "checks.py").write_text(CHECKS.format(name=f"pkg{i:02d}"))
        (project / "pyproject.toml").write_text(textwrap.dedent(f'''
            [project]
            name = "pkg{i:02d}"
            [tool.finecode.actions.check]
            handlers = [{{ source = "checks:check" }}]
            [tool.finecode.actions.hog]
            handlers = [{{ source = "probe_handlers:hog" }}]
            {extra}'''))
        projects.append(project)
    return projects


@pytest.fixture
async def wm(tmp_path: Path) -> AsyncIterator[tuple[WMClient, list[Path]]]:
    projects = make_projects(tmp_path / "ws", 14)
    client = WMClient()
    await client.start(tmp_path / "ws", options={"warmRunners": False, "maxParallel": 3})
    yield client, projects
    assert client.proc is not None
    pids = [p.pid for p in client.runner_processes()]
    await client.stop()
    assert await waitgone(pids), "no runner outlives the WM"


async def test_more_projects_than_runners_repeated_every_child_ok(
        wm: tuple[WMClient, list[Path]]) -> None:
    """14 projects, maxParallel 3, the same request three times on one server."""
    client, projects = wm
    for round_ in range(3):
        run = await client.run_batch(["check"], token=f"r{round_}")
        assert run.result["summary"] == {"ok": 14, "failed": 0, "cancelled": 0}, run.result
        by_root = {r["project"]: r["result"] for r in run.result["results"]}
        for project in projects:
            assert by_root[str(project)] == {"project": project.name, "root": str(project)}, \
                "each project ran its own checks.py with its own project_root"
        assert check_stream([v for _, v in run.progress])[-1] == 100
        assert len(client.runner_processes()) <= 3 + 1


async def test_cancel_a_blocking_handler_then_run_again_on_that_project(
        wm: tuple[WMClient, list[Path]]) -> None:
    client, projects = wm
    assert client.conn is not None
    target = [str(projects[0])]
    client.progress["blk"] = []
    pending = asyncio.create_task(client.conn.request("runBatch", {
        "actions": ["hog"], "projects": target, "params": {"seconds": 30},
        "workDoneToken": "blk"}))
    while not client.progress["blk"]:
        await asyncio.sleep(0.01)
    client.conn.notify("window/workDoneProgress/cancel", {"token": "blk"})
    cancelled = await asyncio.wait_for(pending, 5)
    assert cancelled["summary"]["cancelled"] == 1
    again = await client.run_batch(["check"], projects=target)
    assert again.result["summary"]["ok"] == 1, again.result
    await asyncio.sleep(2.5)  # the blocked runner is killed after the grace meanwhile
    third = await client.run_batch(["check"])
    assert third.result["summary"]["ok"] == 14, third.result


async def test_config_and_handler_edits_take_effect_on_the_next_run(
        wm: tuple[WMClient, list[Path]]) -> None:
    client, projects = wm
    target = [str(projects[1])]
    first = await client.run_batch(["check"], projects=target)
    assert first.result["results"][0]["result"]["project"] == "pkg01"
    (projects[1] / "checks.py").write_text(CHECKS.format(name="edited"))
    second = await client.run_batch(["check"], projects=target)
    assert second.result["results"][0]["result"]["project"] == "edited"
    pyproject = projects[1] / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + textwrap.dedent('''
        [tool.finecode.actions.extra]
        handlers = [{ source = "probe_handlers:quiet" }]
        '''))
    third = await client.run_batch(["extra"], projects=target)
    assert third.result["results"][0]["result"] == {"ok": True}


async def test_a_project_that_appears_is_found_after_a_watched_file_event(
        wm: tuple[WMClient, list[Path]], tmp_path: Path) -> None:
    client, _ = wm
    assert client.conn is not None
    fresh = make_projects(tmp_path / "ws" / "later", 1)[0]
    client.conn.notify("workspace/didChangeWatchedFiles", {"changes": [
        {"uri": (fresh / "pyproject.toml").as_uri(), "type": 1}]})
    run = await client.run_batch(["check"], projects=[str(fresh)])
    assert run.result["summary"]["ok"] == 1


async def test_projects_on_two_virtualenvs_each_get_their_own_interpreter(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    prefixes = {}
    for name in ("one", "two"):
        venv = tmp_path / f"venv-{name}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=60)
        project = ws / name
        project.mkdir(parents=True)
        (project / "where.py").write_text(
            "import sys\n\nasync def where(params, ctx):\n    return sys.prefix\n")
        (project / "pyproject.toml").write_text(
            f'[tool.finecode]\npython = "{venv}/bin/python"\n'
            '[tool.finecode.actions.where]\nhandlers = [{ source = "where:where" }]\n')
        prefixes[str(project)] = str(venv)
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "where", "--json",
                           "--workspace", str(ws)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert {r["project"]: r["result"] for r in results} == prefixes


async def test_runner_without_project_root_needs_one_per_run() -> None:
    pool = RunnerPool(lambda _m: None)
    try:
        async with pool.lease(ENV) as runner:
            with pytest.raises(RpcError) as info:
                await runner.request("run", {"action": "count"})
            assert "projectRoot" in info.value.message
    finally:
        await pool.stop_all()
