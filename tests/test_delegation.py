"""Delegation (`ctx.run_action`) end to end: the real WM, real runners, a pytest-lsp client."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types

from benchmarks.wm_client import WMClient
from finecode_wm.delegation import MAX_DEPTH, Execution, refusal
from finecode_wm.workspace import Project

from .conftest import FIXTURES
from .lsp_client import CONFIG, RecordingClient, init_params
from .rules import check_stream
from .test_lsp import run_batch

pytestmark = pytest.mark.timeout(60)

WS = FIXTURES / "delegation"
APP, LIB = str(WS / "app"), str(WS / "lib")


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: RecordingClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(init_params(root=WS, warm=False, maxParallel=3))
    # runners up and handlers imported: single-child streams then begin determinate
    await run_batch(lsp_client, actions=["steps", "where"], params={"n": 1, "delay": 0})
    lsp_client.values.clear()
    yield
    await lsp_client.shutdown_session()


async def test_same_project_attached_moves_the_parent_bar(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["parent"], projects=[APP], workDoneToken="a",
                             params={"action": "steps", "attach": True,
                                     "params": {"n": 8, "delay": 0.06}})
    (entry,) = result["results"]
    assert entry["status"] == "ok"
    delegated = entry["result"]
    assert delegated["summary"] == {"ok": 1, "failed": 0, "cancelled": 0}
    assert delegated["results"][0]["result"] == {"steps": 8, "root": APP}
    values = client.values["a"]
    shown = check_stream(values)
    assert set(client.values) == {"a"}, "no delegated token ever reaches the client"
    during = {p for p in shown if 50 < p < 100}  # the parent's second step, subdivided
    assert len(during) >= 2, f"attached work moves the bar: {shown}"
    narrated = [v.get("message", "") for v in values]
    assert any("steps" in m and "file" in m for m in narrated), \
        f"the delegated narrative becomes the parent's: {narrated}"


async def test_other_project_unattached_leaves_the_parent_bar_alone(
        client: RecordingClient) -> None:
    result = await run_batch(client, actions=["parent"], projects=[APP], workDoneToken="u",
                             params={"action": "steps", "projects": ["../lib"],
                                     "params": {"n": 8, "delay": 0.06}})
    delegated = result["results"][0]["result"]
    assert [(r["project"], r["status"]) for r in delegated["results"]] == [(LIB, "ok")]
    values = client.values["u"]
    shown = check_stream(values)
    assert set(shown) <= {0, 50, 99, 100}, f"unattached work does not move the bar: {values}"
    assert not any("file" in v.get("message", "") for v in values)
    assert set(client.values) == {"u"}


async def test_a_failing_delegated_child_is_a_result(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["parent"], projects=[APP],
                             params={"action": "broken", "projects": [APP, LIB]})
    (entry,) = result["results"]
    assert entry["status"] == "ok"
    assert entry["result"]["summary"] == {"ok": 0, "failed": 2, "cancelled": 0}
    assert "the delegated child broke" in entry["result"]["results"][0]["error"]


async def test_bad_delegation_raises_in_the_handler(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["bad"], projects=[APP])
    text = result["results"][0]["result"]
    assert text.startswith("DelegationError: unknown action 'no_such_action'"), text


async def test_a_cycle_fails_that_child_with_the_cycle_named(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["cycle_a"], projects=[APP])
    inner = result["results"][0]["result"]["results"][0]["result"]["results"][0]
    assert inner["status"] == "failed"
    assert inner["error"] == "delegation cycle: cycle_a → cycle_b → cycle_a"


async def test_cancelling_the_parent_cancels_the_delegated_child(
        client: RecordingClient, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    client.values.setdefault("c", [])
    task = asyncio.create_task(run_batch(
        client, actions=["parent"], projects=[APP], workDoneToken="c",
        params={"action": "marked", "projects": ["../lib"], "attach": True,
                "params": {"marker": str(marker)}}))
    while not any("Marked" in v.get("message", "") or "marked" in v.get("message", "")
                  for v in client.values["c"]):
        await asyncio.sleep(0.02)
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token="c"))
    result = await asyncio.wait_for(task, 10)
    assert result["summary"]["cancelled"] == 1
    for _ in range(100):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    assert marker.read_text().startswith("cancelled"), "the delegated handler saw the cancel"
    again = await run_batch(client, actions=["steps"], params={"n": 2, "delay": 0})
    assert again["summary"]["ok"] == 3, "and the next request works (app, lib, iso)"


@pytest_lsp.fixture(config=CONFIG)
async def single_slot(lsp_client: RecordingClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(init_params(root=WS, warm=False, maxParallel=1))
    yield
    await lsp_client.shutdown_session()


async def test_max_parallel_one_does_not_deadlock(single_slot: RecordingClient) -> None:
    """Two parents at once, each waiting on a child, with one slot: parents lend it."""
    result = await asyncio.wait_for(run_batch(
        single_slot, actions=["parent"], workDoneToken="one",
        params={"action": "steps", "attach": True, "params": {"n": 3, "delay": 0.02}}), 30)
    assert result["summary"] == {"ok": 2, "failed": 0, "cancelled": 0}
    assert all(r["result"]["summary"]["ok"] == 1 for r in result["results"])
    check_stream(single_slot.values["one"])


async def test_max_parallel_one_a_crashing_delegated_child_fails_alone(
        single_slot: RecordingClient) -> None:
    """The child runs in a runner of its own, never its parent's (even over maxParallel = 1
    runners), so a crash of its runner fails that child and the parent gets the result."""
    result = await asyncio.wait_for(run_batch(
        single_slot, actions=["parent"], projects=[APP], workDoneToken="crash",
        params={"action": "crash", "attach": True}), 30)
    (entry,) = result["results"]
    assert entry["status"] == "ok", entry
    (child,) = entry["result"]["results"]
    assert child["status"] == "failed" and "exited (code 3)" in child["error"], child
    check_stream(single_slot.values["crash"])
    again = await run_batch(single_slot, actions=["parent"], projects=[APP],
                            params={"action": "steps", "params": {"n": 2, "delay": 0}})
    assert again["results"][0]["status"] == "ok"
    assert again["results"][0]["result"]["summary"]["ok"] == 1, "and the next run works"


async def test_delegation_across_two_environments(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WS, ws)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    app = ws / "app" / "pyproject.toml"
    app.write_text(app.read_text().replace(
        'name = "app"\n', f'name = "app"\n\n[tool.finecode]\npython = "{venv}/bin/python"\n'))
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))
    wm = WMClient()
    await wm.start(ws, options={"warmRunners": False})
    try:
        own = await wm.run_batch(["where"], projects=[str(ws / "app")])
        assert own.result["results"][0]["result"] == str(venv)
        run = await wm.run_batch(["parent"], projects=[str(ws / "app")], token="x",
                                 params={"action": "where", "projects": ["../lib"],
                                         "attach": True})
        (entry,) = run.result["results"]
        assert entry["status"] == "ok", entry
        (child,) = entry["result"]["results"]
        assert child["project"] == str(ws / "lib") and child["result"] == sys.prefix
        check_stream([v for _, v in run.progress])
    finally:
        await wm.stop()


def test_depth_limit_and_cycle_words() -> None:
    def project(name: str) -> Project:
        return Project(Path(f"/ws/{name}"), name, sys.executable, {})

    chain = tuple((Path(f"/ws/p{i}"), f"p{i}", "a") for i in range(MAX_DEPTH))
    assert refusal(chain, project("q"), "a") == (
        f"delegation deeper than {MAX_DEPTH} levels: " +
        " → ".join(f"p{i}/a" for i in range(MAX_DEPTH)) + " → q/a")
    assert refusal(chain[:2], project("p0"), "a") == "delegation cycle: p0/a → p1/a → p0/a"
    assert refusal(chain[:2], project("p0"), "b") is None


async def test_lending_never_lets_more_than_max_parallel_work() -> None:
    """A second delegation that starts while the first is taking its slot back must not
    release a slot the parent does not hold (maxParallel = 1)."""
    slots = asyncio.Semaphore(1)
    working: set[str] = set()
    peak = 0

    async def execution(name: str, seconds: float) -> None:
        nonlocal peak
        async with slots:
            working.add(name)
            peak = max(peak, len(working))
            await asyncio.sleep(seconds)
            working.discard(name)

    async with slots:  # the parent holds its slot, then waits on delegated children
        parent = Execution(Project(Path("/ws/p"), "p", sys.executable, {}), "parent", (), slots)

        async def delegated(name: str) -> None:
            async with parent.lending_slot():
                await execution(name, 0.05)

        first = asyncio.create_task(delegated("first"))
        await asyncio.sleep(0.01)
        others = [asyncio.create_task(execution(f"other{i}", 0.1)) for i in range(2)]
        await asyncio.sleep(0.08)  # first is done; its slot comes back behind the others
        second = asyncio.create_task(delegated("second"))
        await asyncio.gather(first, second, *others)
    assert peak == 1
    assert slots._value == 1, "the books balance"


async def test_what_an_execution_delegated_ends_with_it_and_nothing_starts_after() -> None:
    """Delegated work runs in the execution's cancel scope: when the execution is over
    (`end()`, which `Batch` calls once its run answered, failed or timed out), work still
    running is cancelled, its lent slot is taken back, and no new delegation starts."""
    slots = asyncio.Semaphore(1)
    started = asyncio.Event()
    ran_late = False

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def late() -> None:
        nonlocal ran_late
        ran_late = True

    async with slots:  # the child holds its slot while it runs
        execution = Execution(Project(Path("/ws/p"), "p", sys.executable, {}), "parent", (),
                              slots)
        async with execution.scope:
            assert execution.running
            # a runner's `runAction` request, answered in a task of the runner's connection
            request = asyncio.create_task(execution.delegate(forever))
            await started.wait()
            assert slots._value == 1, "the slot is lent while the delegated work runs"
            execution.end()
        assert not execution.running
        with pytest.raises(asyncio.CancelledError):
            await request
        with pytest.raises(RuntimeError):
            await execution.delegate(late)
        assert not ran_late
        await asyncio.sleep(0.01)  # the lent slot is taken back
    assert slots._value == 1, "the books balance"
