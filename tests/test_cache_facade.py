"""`ResultCache` as the batch uses it: lookup, a runner's answer stored, hits, misses, and its
worker thread (errors reach the caller, a cancelled caller does not stall the others)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from finecode_wm import cache as cache_module
from finecode_wm import trust
from finecode_wm.cache import ResultCache, _Worker
from finecode_wm.workspace import Project, Workspace

from .test_cache_keys import make_project

pytestmark = pytest.mark.timeout(30)


def answer(result: Any, **info: Any) -> dict[str, Any]:
    return {"result": result, "cacheInfo": {"cacheable": True, "version": ["1"], "files": [],
                                            "dirs": [], **info}}


@pytest.fixture(params=[False, True], ids=["worker", "on-loop"])
def setup(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[ResultCache, Project, Path]:
    """The cache doing its work on its worker thread (servers, a terminal's own process), and
    on the loop's own thread (the daemon): the same answers."""
    make_project(tmp_path / "ws" / "app")
    workspace = Workspace([tmp_path / "ws"])
    (project,) = workspace.projects.values()
    return ResultCache(workspace, tmp_path / "cache", on_loop=request.param), project, tmp_path


async def test_a_stored_answer_is_a_hit_until_something_changes(
        setup: tuple[ResultCache, Project, Path]) -> None:
    cache, project, tmp_path = setup
    tool = tmp_path / "tool"
    tool.write_text("1")
    miss = await cache.lookup(project, "lint", {})
    assert miss.key is not None and not miss.hit
    assert cache.finished(miss, answer({"n": 1}, files=[str(tool)])) == {"n": 1}
    await cache.settle()
    hit = await cache.lookup(project, "lint", {})
    assert hit.hit and hit.result == {"n": 1} and hit.key == miss.key
    assert not (await cache.lookup(project, "lint", {}, read=False)).hit, "--no-cache"
    assert not (await cache.lookup(project, "lint", {"other": 1})).hit
    tool.write_text("2")
    assert not (await cache.lookup(project, "lint", {})).hit, "what the result stood on changed"
    await cache.close()
    assert list((tmp_path / "cache").glob("digests-*.index")), "the digests are kept"


@pytest.mark.parametrize("response", [
    {"n": 1},  # a runner that was not asked, or an old one
    {"result": {"n": 1}, "cacheInfo": {"cacheable": False, "reason": "not declared"}},
    {"result": {"n": 1}, "cacheInfo": "garbage"},
])
async def test_an_answer_that_may_not_be_cached_is_not_stored(
        setup: tuple[ResultCache, Project, Path], response: dict[str, Any]) -> None:
    cache, project, _ = setup
    miss = await cache.lookup(project, "lint", {})
    result = cache.finished(miss, response)
    assert result == (response["result"] if "result" in response else response)
    await cache.settle()
    assert not (await cache.lookup(project, "lint", {})).hit


async def test_a_child_its_runner_declined_is_keyed_no_more_until_its_config_changes(
        setup: tuple[ResultCache, Project, Path]) -> None:
    """A server keeps no key for a handler that did not opt in (its runner said so): no walk,
    no `cacheInfo` asked. Its config or handler code changing asks again."""
    cache, project, tmp_path = setup
    first = await cache.lookup(project, "lint", {})
    assert first.key is not None
    declined = {"result": {"n": 1}, "cacheInfo": {"cacheable": False, "reason": "not declared"}}
    assert cache.finished(first, declined) == {"n": 1}
    again = await cache.lookup(project, "lint", {})
    assert again.key is None and not again.hit, "not keyed: the runner is not asked either"
    (project.root / "checks.py").write_text("async def run(params, ctx):\n    return {1: 1}\n")
    edited = Workspace([tmp_path / "ws"])
    (fresh,) = edited.projects.values()
    assert (await ResultCache(edited, tmp_path / "cache").lookup(fresh, "lint", {})).key \
        is not None, "another process keys it"
    assert (await cache.lookup(fresh, "lint", {})).key is not None, "its handler code changed"


async def test_an_edit_while_it_ran_is_not_stored(setup: tuple[ResultCache, Project, Path]
                                                  ) -> None:
    cache, project, _ = setup
    miss = await cache.lookup(project, "lint", {})
    (project.root / "pkg" / "core.py").write_text("VALUE = 'edited while linting'\n")
    cache.finished(miss, answer({"n": 1}))
    await cache.settle()
    assert not (await cache.lookup(project, "lint", {})).hit


async def test_a_project_too_large_to_key_is_never_cached(
        setup: tuple[ResultCache, Project, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cache, project, _ = setup
    monkeypatch.setattr(trust, "MAX_WALKED", 1)
    lookup = await cache.lookup(project, "lint", {})
    assert lookup.key is None and cache.finished(lookup, answer(1)) == answer(1)


async def test_the_worker_hands_errors_over_and_survives_a_cancelled_caller() -> None:
    worker = _Worker()

    def boom() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await worker.call(boom)
    slow = worker.call(lambda: sum(range(10**6)))
    after = worker.call(lambda: "after")
    slow.cancel()
    assert await after == "after"
    results = await asyncio.gather(*(worker.call(lambda i=i: i) for i in range(50)))
    assert results == list(range(50)), "in order"


async def test_the_worker_is_one_thread_for_every_burst_of_jobs() -> None:
    """Started once, kept between bursts: a thread start blocks the loop each time."""
    worker = _Worker()
    before = {t.ident for t in threading.enumerate()}
    for burst in range(5):
        assert await worker.call(lambda b=burst: b) == burst
        await asyncio.sleep(0.01)  # the queue ran dry: the thread waits for the next burst
    new = [t for t in threading.enumerate() if t.ident not in before]
    assert [t.name for t in new] == ["finecode-cache"] and new[0].daemon


def test_the_worker_answers_each_event_loop_its_own_jobs() -> None:
    worker = _Worker()

    async def jobs(tag: str) -> list[str]:
        return list(await asyncio.gather(*(worker.call(lambda i=i: f"{tag}{i}")
                                           for i in range(20))))

    assert asyncio.run(jobs("a")) == [f"a{i}" for i in range(20)]
    assert asyncio.run(jobs("b")) == [f"b{i}" for i in range(20)], "a second loop, one thread"


async def test_a_cache_that_breaks_costs_speed_never_a_result(
        setup: tuple[ResultCache, Project, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cache, project, _ = setup
    logged: list[str] = []
    cache._log = logged.append
    miss = await cache.lookup(project, "lint", {})

    def broken(*_args: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(cache, "_store", broken)
    assert cache.finished(miss, answer({"n": 1})) == {"n": 1}
    await cache.settle()
    monkeypatch.setattr(cache, "_lookup", broken)
    lookup = await cache.lookup(project, "lint", {})
    assert lookup.key is None and not lookup.hit
    assert [m.split(":")[1].strip() for m in logged] == ["a result was not stored",
                                                         "app/lint not looked up"]


async def test_close_does_not_wait_forever_on_a_blocked_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that never ends (a read that blocks) must not keep the program from exiting:
    `close` gives up after CLOSE_WAIT and says so."""
    monkeypatch.setattr(cache_module, "CLOSE_WAIT", 0.2)
    make_project(tmp_path / "ws" / "app")
    said: list[str] = []
    workspace = Workspace([tmp_path / "ws"])
    cache = ResultCache(workspace, tmp_path / "cache", log=said.append)
    (project,) = workspace.projects.values()
    await cache.lookup(project, "lint", {})  # the digest index is open: close saves it
    release = threading.Event()
    blocked = asyncio.ensure_future(cache._call(release.wait))  # stuck until released
    await asyncio.sleep(0)  # submitted
    try:
        await cache.close()
        assert any("still busy" in line for line in said), said
    finally:
        release.set()
        await blocked
