"""Faults, load and bad input against the real WM process (raw JSON-RPC client)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.wm_client import WMClient
from finecode_er.wire import RpcError

from .conftest import FIXTURES, WORKSPACE
from .rules import check_stream, gone, waitgone

pytestmark = pytest.mark.timeout(90)

ALPHA = str(WORKSPACE / "alpha")


@pytest.fixture(autouse=True)
def probe_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))


@pytest.fixture
async def wm() -> AsyncIterator[WMClient]:
    client = WMClient()
    await client.start(WORKSPACE, options={"warmRunners": False})
    yield client
    await client.stop()


def values(client: WMClient, token: str) -> list[dict[str, Any]]:
    return [v for _, v in client.progress.get(token, [])]



async def test_uncooperative_handler_times_out_and_its_runner_is_replaced(wm: WMClient) -> None:
    await wm.run_batch(["quiet"])
    before = {p.pid for p in wm.runner_processes()}
    run = await wm.run_batch(["hog", "quiet"], token="hog", params={"seconds": 30},
                             options={"timeout": 0.5})
    by_child = {(r["project"], r["action"]): r for r in run.result["results"]}
    hog = by_child[(ALPHA, "hog")]
    assert hog["status"] == "failed" and hog["error"] == "timed out after 0.5 s"
    assert by_child[(str(WORKSPACE / "beta"), "quiet")]["status"] == "ok", \
        "children on other runners are not held hostage"
    check_stream([v for _, v in run.progress])
    for _ in range(200):
        after = {p.pid for p in wm.runner_processes() if not gone(p.pid)}
        if len(before - after) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(before - after) == 1, "the runner that ignored the cancel is killed after the grace"
    again = await wm.run_batch(["quiet"], projects=[ALPHA])
    assert again.result["summary"]["ok"] == 1, "and restarted on next use"


async def test_cancel_by_token_while_a_handler_blocks(wm: WMClient) -> None:
    assert wm.conn is not None
    wm.progress["blk"] = []
    task = asyncio.create_task(wm.conn.request("runBatch", {
        "actions": ["hog"], "projects": [ALPHA], "params": {"seconds": 30},
        "workDoneToken": "blk"}))
    while not wm.progress["blk"]:
        await asyncio.sleep(0.01)
    wm.conn.notify("window/workDoneProgress/cancel", {"token": "blk"})
    result = await asyncio.wait_for(task, 5)
    assert result["summary"] == {"ok": 0, "failed": 0, "cancelled": 1}
    check_stream(values(wm, "blk"))


async def test_twenty_concurrent_requests_no_cross_talk(wm: WMClient) -> None:
    runs = await asyncio.gather(*(
        wm.run_batch(["count", "quiet"], token=f"load-{i}", params={"n": 3})
        for i in range(20)))
    for i, run in enumerate(runs):
        assert run.result["summary"] == {"ok": 4, "failed": 0, "cancelled": 0}, i
        stream = [v for _, v in run.progress]
        assert check_stream(stream)[-1] == 100
        assert stream[-1]["message"] == "4 ok"
    assert set(wm.progress) == set(), "every value arrived on a token that was asked for"


async def test_soak_keeps_fds_and_processes_flat(wm: WMClient) -> None:
    await wm.run_batch(["quiet", "count"], token="soak-warm")
    assert wm.ps is not None
    baseline = (wm.ps.num_fds(), len(wm.runner_processes()))
    for i in range(200):
        run = await wm.run_batch(["quiet"], token=f"soak-{i}")
        assert run.result["summary"]["ok"] == 2
    assert (wm.ps.num_fds(), len(wm.runner_processes())) == baseline


@pytest.mark.parametrize("how", ["sigkill", "close-pipe", "sigkill-while-blocked"])
async def test_no_runner_outlives_the_wm(how: str) -> None:
    wm = WMClient()
    await wm.start(WORKSPACE, options={"warmRunners": False})
    assert wm.proc is not None and wm.proc.stdin is not None and wm.conn is not None
    await wm.run_batch(["quiet"])
    pending = None
    if how == "sigkill-while-blocked":
        pending = asyncio.create_task(wm.conn.request("runBatch", {
            "actions": ["hog"], "projects": [ALPHA], "params": {"seconds": 60}}))
        await asyncio.sleep(0.5)
    pids = [p.pid for p in wm.runner_processes()]
    assert len(pids) == 2
    if how == "close-pipe":
        wm.proc.stdin.close()
    else:
        os.kill(wm.proc.pid, signal.SIGKILL)
    await asyncio.wait_for(wm.proc.wait(), 10)
    assert await waitgone(pids), f"runner left behind after {how}"
    if pending is not None:
        pending.cancel()


# -- fuzzing the custom request through the real server ---------------------------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=8)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=8)
field_values = {
    "actions": st.lists(st.sampled_from(["quiet", "count", "nope", ""]), max_size=3) | json_value,
    "projects": st.lists(st.sampled_from([ALPHA, "/tmp", "rel", str(WORKSPACE / "plain")]),
                         max_size=2) | json_value,
    "params": st.dictionaries(st.sampled_from(["n", "delay"]), st.integers(0, 3)) | json_value,
    "options": st.fixed_dictionaries({}, optional={
        "concurrent": st.booleans() | json_leaf, "stopOnFailure": st.booleans(),
        "timeout": st.floats(0.1, 5) | json_leaf}) | json_value,
    "workDoneToken": st.none() | st.text(min_size=1, max_size=5) | json_leaf,
    "partialResultToken": st.none() | st.text(min_size=1, max_size=5) | json_leaf,
}
run_batch_params = st.fixed_dictionaries({}, optional=field_values) | json_value


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[asyncio.AbstractEventLoop, WMClient]]:
    loop = asyncio.new_event_loop()
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(FIXTURES)
    client = WMClient()
    loop.run_until_complete(client.start(WORKSPACE, options={"warmRunners": False}))
    yield loop, client
    loop.run_until_complete(client.stop())
    loop.close()
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=run_batch_params)
def test_fuzzed_run_batch_params_never_break_the_server(
        fuzz_target: tuple[asyncio.AbstractEventLoop, WMClient], params: Any) -> None:
    loop, client = fuzz_target
    assert client.conn is not None
    request = client.conn.request("runBatch", params)
    try:
        result = loop.run_until_complete(asyncio.wait_for(request, 30))
    except RpcError as exc:
        assert exc.code == -32602, (params, exc.code, exc.message)
        assert exc.message
    else:
        assert set(result) <= {"results", "summary", "config_errors"} and "summary" in result
    assert client.proc is not None and client.proc.returncode is None
    assert len(client.runner_processes()) <= 2


async def test_per_action_timeout_from_config(wm: WMClient) -> None:
    run = await wm.run_batch(["hog_limited"], token="cfg", params={"seconds": 30})
    (entry,) = run.result["results"]
    assert entry["status"] == "failed" and entry["error"] == "timed out after 0.5 s"
    check_stream([v for _, v in run.progress])


async def test_a_slow_token_create_answer_is_never_an_error() -> None:
    """The client answers window/workDoneProgress/create after the WM stopped waiting."""
    client = WMClient()
    shown: list[Any] = []
    plain_notified = client._on_notification
    answered = asyncio.Event()

    async def slow_create(method: str, params: Any) -> None:
        await answered.wait()  # only once the WM gave up waiting and answered the run

    def notified(method: str, params: Any) -> None:
        if method == "window/showMessage":
            shown.append(params)
        plain_notified(method, params)

    client._on_request = slow_create  # type: ignore[method-assign]
    client._on_notification = notified  # type: ignore[method-assign]
    await client.start(WORKSPACE, options={"warmRunners": False}, work_done_progress=True)
    try:
        assert client.conn is not None
        await asyncio.sleep(0.3)
        shown.clear()  # the broken fixture project's config error
        result = await client.conn.request("workspace/executeCommand", {
            "command": "finecode.runAction", "arguments": [{"action": "quiet"}]})
        assert result["summary"]["ok"] == 2
        answered.set()
        await asyncio.sleep(1)  # the late answer arrives, and anything it set off
        assert shown == [], shown
        assert list(client.progress) == [], "a token answered too late begins nothing"
    finally:
        await client.stop()


def test_a_connection_closed_without_shutdown_exits_1_and_says_why() -> None:
    """LSP's exit code for an end without `shutdown`; a person who typed the command is told."""
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "lsp"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "closed the connection without a shutdown request" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


async def test_refused_and_cancelled_requests_log_no_traceback(tmp_path: Path) -> None:
    """InvalidParams and RequestCancelled are answers, not faults: an editor's output panel
    (the server's stderr) gets no traceback for them."""
    log = (tmp_path / "stderr").open("wb")
    client = WMClient()
    await client.start(WORKSPACE, options={"warmRunners": False}, stderr=log)
    try:
        assert client.conn is not None
        with pytest.raises(RpcError) as refused:
            await client.conn.request("runBatch", {"actions": []})
        assert refused.value.code == -32602
        running = asyncio.ensure_future(client.conn.request(
            "runBatch", {"actions": ["slow"], "params": {"seconds": 30}}))
        await asyncio.sleep(0.5)
        running.cancel()  # sends $/cancelRequest
        with pytest.raises(asyncio.CancelledError):
            await running
        await asyncio.sleep(0.5)  # the cancelled answer is sent
    finally:
        await client.stop()
        log.close()
    assert "Traceback" not in (tmp_path / "stderr").read_text(), \
        (tmp_path / "stderr").read_text()[-3000:]
