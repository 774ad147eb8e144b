"""The runner process on real pipes: progress, silence, cancel, failures, stdin closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from finecode_er.wire import RpcError, encode

from .conftest import ER_PROJECT, RunnerUnderTest, start_runner
from .rules import check_stream

pytestmark = pytest.mark.timeout(30)


async def test_initialize_lists_actions(runner: RunnerUnderTest) -> None:
    info = await runner.request("initialize", {"projectRoot": str(ER_PROJECT)})
    assert "count" in info["actions"] and info["pid"] == runner.proc.pid


async def test_progress_sequence_on_token(runner: RunnerUnderTest) -> None:
    # 40 advances 5 ms apart: paced at 25 ms, about one report in five
    result = await runner.request("run", {"action": "count", "params": {"n": 40, "delay": 0.005},
                                          "workDoneToken": "t1"})
    assert result == {"counted": 40}
    values = runner.progress["t1"]
    shown = check_stream(values)
    assert values[0]["title"] == "Counting" and values[0]["total"] == 40
    assert shown[-1] == 100
    assert 3 <= len(values) <= 20, "reports are paced, not one per advance"
    last_report = [v for v in values if v["kind"] == "report"][-1]
    assert last_report["done"] == 40 and last_report["total"] == 40
    assert values[-1]["message"] == "done"


async def test_no_token_sends_nothing(runner: RunnerUnderTest) -> None:
    assert await runner.request("run", {"action": "count", "params": {"n": 50}}) == {"counted": 50}
    await runner.request("run", {"action": "quiet"})
    assert dict(runner.progress) == {}


async def test_handler_without_progress_sends_nothing_on_token(runner: RunnerUnderTest) -> None:
    assert await runner.request("run", {"action": "quiet", "workDoneToken": 5}) == {"ok": True}
    assert runner.progress[5] == []


@pytest.mark.parametrize("action", ["two_seq", "two_conc"])
async def test_two_handlers_make_one_stream_weighted_by_totals(
        runner: RunnerUnderTest, action: str) -> None:
    result = await runner.request("run", {"action": action, "params": {"n": 4, "delay": 0.03},
                                          "workDoneToken": action})
    assert result == [{"counted": 4}, {"counted": 12}]
    values = runner.progress[action]
    shown = check_stream(values)
    assert shown[-1] == 100
    if action == "two_seq":
        # the first handler (4 of 16 units, once the second declared 12) never shows above 50%
        # before the second starts: a count of 2 parts is the measure until totals arrive
        totals = [v.get("total") for v in values if "total" in v]
        assert totals[-1] == 16


async def test_nested_scopes_subdivide_steps(runner: RunnerUnderTest) -> None:
    assert await runner.request("run", {"action": "nested", "workDoneToken": "n"}) == "nested"
    shown = check_stream(runner.progress["n"])
    assert len(set(shown)) >= 3, f"inner scopes move the bar within a step: {shown}"
    done = [v["done"] for v in runner.progress["n"] if "done" in v]
    assert done == sorted(done), f"work units never go back: {done}"
    assert runner.progress["n"][0]["total"] == 2


async def test_untotalled_scope_is_indeterminate(runner: RunnerUnderTest) -> None:
    await runner.request("run", {"action": "untotalled", "workDoneToken": "u"})
    values = runner.progress["u"]
    assert check_stream(values) == []
    assert all("total" not in v for v in values)


async def test_late_total_keeps_the_stream_indeterminate_but_reports_units(
        runner: RunnerUnderTest) -> None:
    await runner.request("run", {"action": "late_total", "workDoneToken": "l"})
    values = runner.progress["l"]
    check_stream(values)
    assert "total" not in values[0]
    assert any(v.get("total") == 4 for v in values[1:]), "units reach the WM once declared"


async def test_handler_exception_is_a_failed_run_with_a_useful_message(
        runner: RunnerUnderTest) -> None:
    with pytest.raises(RpcError) as info:
        await runner.request("run", {"action": "boom", "workDoneToken": "b"})
    error = info.value
    assert error.code == -32001
    assert "ValueError: the widget is broken" in error.message
    assert "probe_handlers.py" in error.message and "boom" in error.message
    check_stream(runner.progress["b"])
    assert runner.progress["b"][-1]["message"].startswith("failed")
    # the runner survives
    assert await runner.request("run", {"action": "quiet"}) == {"ok": True}


async def test_handler_that_does_not_import(runner: RunnerUnderTest) -> None:
    with pytest.raises(RpcError) as info:
        await runner.request("run", {"action": "missing", "workDoneToken": "m"})
    assert "no_such_module_here" in info.value.message
    assert "ModuleNotFoundError" in info.value.message
    assert info.value.data["kind"] == "import"
    assert runner.progress["m"] == []
    assert await runner.request("run", {"action": "quiet"}) == {"ok": True}


async def test_unknown_action_and_bad_params_are_invalid_params(runner: RunnerUnderTest) -> None:
    for params in ({"action": "nope"}, {"nothing": 1}, {"action": "count", "params": [1]},
                   {"action": "count", "workDoneToken": 1.5}):
        with pytest.raises(RpcError) as info:
            await runner.request("run", params)
        assert info.value.code == -32602, params
    with pytest.raises(RpcError) as info:
        await runner.request("run", {"action": "nope"})
    assert "count" in info.value.message, "the message lists the defined actions"


async def test_cancel_ends_stream_and_answers_request_cancelled(runner: RunnerUnderTest) -> None:
    task = asyncio.create_task(runner.conn.request(
        "run", {"action": "slow", "workDoneToken": "c"}))
    while len(runner.progress["c"]) < 2:
        await asyncio.sleep(0.02)
    task.cancel()  # Connection.request sends $/cancelRequest
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if runner.progress["c"][-1]["kind"] == "end":
            break
        await asyncio.sleep(0.02)
    check_stream(runner.progress["c"])
    assert runner.progress["c"][-1]["message"] == "cancelled"
    assert runner.progress["c"][0]["cancellable"] is True


async def test_cancel_answer_code(runner: RunnerUnderTest) -> None:
    """The raw answer to $/cancelRequest is RequestCancelled (-32800)."""
    assert runner.proc.stdin is not None
    fut = asyncio.get_running_loop().create_future()
    runner.conn._pending[999] = fut
    runner.proc.stdin.write(encode({"jsonrpc": "2.0", "id": 999, "method": "run",
                                    "params": {"action": "slow"}}))
    await asyncio.sleep(0.2)
    runner.conn.notify("$/cancelRequest", {"id": 999})
    with pytest.raises(RpcError) as info:
        await asyncio.wait_for(fut, 5)
    assert info.value.code == -32800


async def test_several_runs_in_flight(runner: RunnerUnderTest) -> None:
    results = await asyncio.gather(*(runner.request("run", {
        "action": "count", "params": {"n": 5, "delay": 0.01}, "workDoneToken": f"p{i}"})
        for i in range(5)))
    assert results == [{"counted": 5}] * 5
    for i in range(5):
        check_stream(runner.progress[f"p{i}"])


async def test_output_never_corrupts_the_protocol(runner: RunnerUnderTest) -> None:
    assert await runner.request("run", {"action": "chatty"}) == "chatted"
    assert await runner.request("run", {"action": "quiet"}) == {"ok": True}
    await asyncio.sleep(0.1)
    assert b"child process output" in runner.stderr and b"raw fd 1" in runner.stderr


async def test_tight_loop_is_coalesced(runner: RunnerUnderTest) -> None:
    await runner.request("run", {"action": "tight", "params": {"n": 100_000},
                                 "workDoneToken": "tight"})
    values = runner.progress["tight"]
    check_stream(values)
    assert len(values) < 200, len(values)


async def test_class_handler_and_partial_results(runner: RunnerUnderTest) -> None:
    assert await runner.request("run", {"action": "klass"}) == "class"
    result = await runner.request("run", {"action": "partial", "partialResultToken": "pr",
                                          "workDoneToken": "wd"})
    assert result == {"pieces": 3}
    assert runner.progress["pr"] == [{"piece": 0}, {"piece": 1}, {"piece": 2}]
    assert runner.progress["wd"] == []


async def test_garbage_on_stdin_is_skipped(runner: RunnerUnderTest) -> None:
    assert runner.proc.stdin is not None
    runner.proc.stdin.write(b"Content-Length: 5\r\n\r\nnot j")
    runner.proc.stdin.write(b"Content-Length: 2\r\n\r\n[]")
    for odd in (b'{"jsonrpc":"2.0","id":[1],"result":1}',
                b'{"jsonrpc":"2.0","id":7,"error":{"code":"x","message":"m"}}',
                b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":{"a":1}}}'):
        runner.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(odd), odd))
    assert await runner.request("run", {"action": "quiet"}) == {"ok": True}


async def test_exits_when_stdin_closes() -> None:
    r = await start_runner()
    assert r.proc.stdin is not None
    r.proc.stdin.close()
    assert await asyncio.wait_for(r.proc.wait(), 10) is not None


async def test_shutdown_then_exit() -> None:
    r = await start_runner()
    assert await r.request("shutdown") is None
    r.conn.notify("exit")
    assert await asyncio.wait_for(r.proc.wait(), 10) == 0


async def test_exits_when_stdin_closes_mid_run() -> None:
    r = await start_runner()
    assert r.proc.stdin is not None
    pending = asyncio.create_task(r.conn.request("run", {"action": "slow"}))
    await asyncio.sleep(0.2)
    r.proc.stdin.close()
    assert await asyncio.wait_for(r.proc.wait(), 10) is not None
    pending.cancel()


async def test_initialize_with_config_from_the_wm_and_bad_config(tmp_path: Path) -> None:
    r = await start_runner(actions={"x": {"handlers": [{"source": "probe_handlers:quiet"}]}})
    assert await r.request("run", {"action": "x"}) == {"ok": True}
    with pytest.raises(RpcError) as info:
        await r.request("initialize", {"projectRoot": str(tmp_path),
                                       "actions": {"x": {"handlers": "nope"}}})
    assert "handlers" in info.value.message
    assert await r.request("run", {"action": "x"}) == {"ok": True}, "old config kept"
    r.proc.kill()
    await r.proc.wait()
