"""`Batch` under faults: a child whose work cannot be sent or received fails alone, a broken
shared runner fails only the children in it, and a cancel at any moment gives a stream end and a
response that agree."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from finecode_er.config import ActionConfig, HandlerConfig
from finecode_wm.batch import Batch
from finecode_wm.planning import BatchOptions, Planned
from finecode_wm.requests import RunRequest
from finecode_wm.runners.routing import ProgressRouter
from finecode_wm.service import FineCode
from finecode_wm.workspace import Environment, Project

from .conftest import WORKSPACE, probe_env
from .rules import check_stream, waitgone

pytestmark = pytest.mark.timeout(60)

ALPHA, BETA = WORKSPACE / "alpha", WORKSPACE / "beta"


@pytest.fixture(autouse=True)
def probe_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in probe_env().items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def logged() -> list[str]:
    return []


@pytest.fixture
async def fine(logged: list[str]) -> AsyncIterator[FineCode]:
    service = FineCode(logged.append, max_parallel=3)
    service.set_folders([WORKSPACE])
    yield service
    pids = service.pool.pids()
    await service.close()
    assert await waitgone(pids), "no runner is left behind"


async def run(fine: FineCode, actions: list[str], **request: Any
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values: list[dict[str, Any]] = []
    batch = fine.batch(RunRequest(actions=actions, **request), emit=values.append)
    result = await asyncio.wait_for(batch.run(), 30)
    check_stream(values)
    return result, values


def by_child(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{Path(e['project']).name}/{e['action']}": e for e in result["results"]}


# -- one child's work cannot be sent ----------------------------------------------------------

async def test_a_config_value_json_cannot_carry_fails_that_child_only(
        fine: FineCode, logged: list[str]) -> None:
    """A TOML date in one project's handler config (discovery converts it; here it is put
    back behind discovery's back): that child fails, the others keep their results."""
    alpha = fine.workspace.projects[ALPHA]
    alpha.actions["quiet"] = ActionConfig(handlers=(HandlerConfig(
        "probe_handlers:quiet", {"since": datetime.date(2024, 1, 2)}),))
    result, values = await run(fine, ["quiet", "count"], params={"n": 2})
    assert result["summary"] == {"ok": 3, "failed": 1, "cancelled": 0}, result
    entries = by_child(result)
    assert entries["alpha/quiet"]["error"] == (
        "cannot send this run to its runner: its request holds a value JSON cannot carry: "
        "Object of type date is not JSON serializable")
    assert entries["alpha/count"]["result"] == {"counted": 2}
    assert entries["beta/quiet"]["result"] == {"ok": True}
    assert values[-1]["message"] == "3 ok, 1 failed"
    assert any(line.startswith("alpha/quiet: cannot send") for line in logged), logged
    del alpha.actions["quiet"]
    again, _ = await run(fine, ["quiet"])
    assert again["summary"] == {"ok": 1, "failed": 0, "cancelled": 0}, "the next run is fine"


@pytest.mark.parametrize("params", [{"when": {1, 2}},
                                    {"when": datetime.datetime(2024, 1, 2, 3, 4)},
                                    {"blob": "x" * (64 * 1024 * 1024)}],
                         ids=["set", "datetime", "over-64-MiB"])
async def test_params_that_cannot_be_sent_fail_every_child_and_the_batch_answers(
        fine: FineCode, params: dict[str, Any]) -> None:
    result, values = await run(fine, ["quiet"], params=params)
    assert result["summary"] == {"ok": 0, "failed": 2, "cancelled": 0}, result
    for entry in result["results"]:
        assert entry["error"].startswith("cannot send this run to its runner: its request ")
    if "blob" in params:
        assert result["results"][0]["error"].endswith("MiB, over the 64 MiB limit")
    assert values[-1]["message"] == "2 failed"
    again, _ = await run(fine, ["quiet"])
    assert again["summary"]["ok"] == 2, "the runners were never touched"


async def test_an_unexpected_error_anywhere_fails_that_child_only(
        fine: FineCode, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Project) -> str:
        if self.root == ALPHA:
            raise OSError(5, "Input/output error")
        return ""

    monkeypatch.setattr(Project, "code_version", broken)
    result, _ = await run(fine, ["quiet"])
    assert result["summary"] == {"ok": 1, "failed": 1, "cancelled": 0}
    failed = by_child(result)["alpha/quiet"]
    assert failed["error"].startswith("could not run: OSError: [Errno 5] Input/output error")


# -- a broken shared runner fails only the children in it -------------------------------------

SHARED = textwrap.dedent('''
    [project]
    name = "{name}"
    [tool.finecode]
    isolated = {isolated}
    [tool.finecode.actions.wait]
    handlers = [{{ source = "hostile_handlers:pid" }}]
''')
FAULTS = '''
[tool.finecode.actions.violate]
handlers = [{ source = "hostile_handlers:violate" }]
[tool.finecode.actions.close_output]
handlers = [{ source = "hostile_handlers:close_output" }]
'''
REASONS = {"violate": "protocol violation: a message of 95.4 MiB, over the 64 MiB limit; the "
                      "runner was killed and is replaced on next use",
           "close_output": "it closed its stdout while still running; the runner was killed "
                           "and is replaced on next use",
           "crash": "exited (code -9)"}


@pytest.mark.parametrize("fault", ["violate", "close_output", "crash"])
async def test_a_broken_shared_runner_fails_only_its_children_the_next_run_is_all_ok(
        tmp_path: Path, fault: str) -> None:
    """maxParallel 5, one runner for the shared environment: several children in flight in
    it when it breaks the framing, closes its output while it goes on, or is killed; an isolated
    project's child on its own runner is not touched."""
    for name, isolated in (("a", "false"), ("b", "false"), ("c", "false"), ("solo", "true")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pyproject.toml").write_text(
            SHARED.format(name=name, isolated=isolated) + (FAULTS if name == "c" else ""))
    fine = FineCode(lambda _m: None, max_parallel=5)
    fine.pool.set_limits(per_environment=1)
    fine.set_folders([tmp_path])
    try:
        await run(fine, ["wait"], projects=[str(tmp_path / "a"), str(tmp_path / "solo")])
        (shared,) = [r for r in fine.pool.runners() if r.environment.isolated is None]
        assert shared.pid is not None
        old = shared.pid
        if fault == "crash":
            asyncio.get_running_loop().call_later(0.3, psutil.Process(old).kill)
            planned = ["wait"]
        else:
            planned = ["wait", fault]
        result, _ = await run(fine, planned, params={"seconds": 1.5})
        entries = by_child(result)
        assert entries.pop("solo/wait")["status"] == "ok", "another runner's child is untouched"
        assert len(entries) == (3 if fault == "crash" else 4)
        for entry in entries.values():
            assert entry["status"] == "failed", entry
            assert REASONS[fault] in entry["error"], entry["error"]
        assert await waitgone([old], 5), "the broken runner is gone, not left beside a new one"
        again, _ = await run(fine, ["wait"])
        assert again["summary"] == {"ok": 4, "failed": 0, "cancelled": 0}, again
    finally:
        pids = fine.pool.pids()
        await fine.close()
        assert await waitgone(pids)


# -- a cancel at any moment -------------------------------------------------------------------

class FakeRunner:
    """Answers each `run` after a number of loop steps (its project's index + 1, times 3)."""

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        for _ in range(3 * (1 + int(Path(params["projectRoot"]).name[1:]))):
            await asyncio.sleep(0)
        return {"ran": params["projectRoot"]}


class FakePool:
    """What `Batch` uses of a `RunnerPool`: one warm runner, no processes."""

    per_environment = 3

    def __init__(self) -> None:
        router = ProgressRouter(lambda _m: None)
        self.mint, self.release = router.mint, router.release
        self.runner = FakeRunner()

    def has_ready(self, environment: Environment, *, avoid: object = ()) -> bool:
        return True

    @contextlib.asynccontextmanager
    async def lease(self, environment: Environment, *,
                    avoid: object = ()) -> AsyncIterator[FakeRunner]:
        await asyncio.sleep(0)
        yield self.runner


PLANNED = [Planned(Project(Path(f"/ws/p{i}"), f"p{i}", sys.executable,
                           {"lint": ActionConfig(handlers=(HandlerConfig("m:f"),))}), "lint")
           for i in range(3)]


async def cancelled_after(steps: int, how: str, options: BatchOptions
                          ) -> tuple[bool, bool, dict[str, Any], list[dict[str, Any]]]:
    """Run a batch, cancel it after `steps` loop steps; (ended cancelled, raised, result,
    stream)."""
    values: list[dict[str, Any]] = []
    batch = Batch(FakePool(), PLANNED, title="t", slots=asyncio.Semaphore(3),  # type: ignore[arg-type]
                  options=options, emit=values.append)
    task = asyncio.create_task(batch.run())
    for _ in range(steps):
        await asyncio.sleep(0)
    if how == "token":
        batch.cancel()
    else:
        task.cancel()
    raised = False
    try:
        result = await task
    except asyncio.CancelledError:
        raised, result = True, batch.result()
    check_stream(values)
    ended_cancelled = values[-1]["message"].startswith("cancelled")
    assert batch.cancelled == ended_cancelled
    return ended_cancelled, raised, result, values


@pytest.mark.parametrize("options", [BatchOptions(), BatchOptions(timeout=10),
                                     BatchOptions(concurrent=False)],
                         ids=["concurrent", "with-timeout", "sequential"])
@pytest.mark.parametrize("how", ["token", "task"])
async def test_a_cancel_at_every_step_ends_stream_and_response_alike(
        how: str, options: BatchOptions) -> None:
    """Every loop step from the start to well after the last child finished: a cancel either
    counts (stream `cancelled: …` below 100 %, a cancelled child, -32800 for a cancelled
    request) or changes nothing (100 %, every child ok, a normal response)."""
    seen = set()
    for steps in range(0 if how == "token" else 1, 90):  # a task cancelled before it began
        # never ran at all (an editor's request always has)
        ended_cancelled, raised, result, values = await cancelled_after(steps, how, options)
        summary = result["summary"]
        shown = [v["percentage"] for v in values if "percentage" in v]
        if ended_cancelled:
            assert summary["cancelled"] >= 1 and shown[-1] < 100, (steps, summary, values[-1])
            assert raised == (how == "task"), steps
        else:
            assert summary == {"ok": 3, "failed": 0, "cancelled": 0}, (steps, summary)
            assert shown[-1] == 100 and values[-1]["message"] == "3 ok", (steps, values[-1])
            assert not raised, steps
        seen.add(ended_cancelled)
    assert seen == {True, False}, "both sides of the decision were exercised"


async def test_a_cancel_after_the_response_changes_nothing() -> None:
    values: list[dict[str, Any]] = []
    batch = Batch(FakePool(), PLANNED, title="t", slots=asyncio.Semaphore(3),  # type: ignore[arg-type]
                  emit=values.append)
    result = await batch.run()
    batch.cancel()
    assert not batch.cancelled and result["summary"]["ok"] == 3
    assert values[-1] == {"kind": "end", "message": "3 ok"}
