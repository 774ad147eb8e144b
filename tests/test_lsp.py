"""End to end: the real WM (`finecode-wm lsp`) and real runner subprocesses, via pytest-lsp."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from .conftest import WORKSPACE
from .lsp_client import CONFIG, RecordingClient, init_params
from .rules import check_stream, gone

pytestmark = pytest.mark.timeout(60)

ALPHA, BETA = str(WORKSPACE / "alpha"), str(WORKSPACE / "beta")


def plain(value: Any) -> Any:
    """pygls hands custom results back as namedtuples; tests compare JSON."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


async def run_batch(client: RecordingClient, **params: Any) -> dict[str, Any]:
    token = params.get("workDoneToken")
    if token is not None:
        client.values.setdefault(token, [])
    result = plain(await client.protocol.send_request_async("runBatch", params))
    if token is not None:
        assert client.values[token][-1]["kind"] == "end", "end arrives before the response"
    return result


def runner_pids(client: RecordingClient) -> list[int]:
    return [p.pid for p in psutil.Process(client._server.pid).children(recursive=True)]


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: RecordingClient) -> AsyncIterator[None]:
    # Trusted, so runners warm at `initialized` as the tests below assume (see test_trust.py).
    lsp_client.init_result = await lsp_client.initialize_session(init_params(trusted=True))
    yield
    if lsp_client._server.returncode is None:
        await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def blind_client(lsp_client: RecordingClient) -> AsyncIterator[None]:
    """A client that did not advertise window.workDoneProgress."""
    await lsp_client.initialize_session(init_params(progress=False))
    yield
    await lsp_client.shutdown_session()


async def test_initialize_advertises_commands_and_lists_projects(
        client: RecordingClient) -> None:
    caps = client.init_result.capabilities
    assert caps is not None and caps.execute_command_provider is not None
    assert set(caps.execute_command_provider.commands) >= {
        "finecode.runAction", "finecode.runBatch", "finecode.listProjects"}
    projects = plain(await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="finecode.listProjects")))
    assert [p["name"] for p in projects] == ["alpha", "beta"]
    assert "count" in projects[0]["actions"]
    await asyncio.sleep(0.1)
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("broken" in m and "colour" in m for m in errors), errors


async def test_client_token_one_stream_results_and_summary(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["count"], workDoneToken="tok")
    values = client.values["tok"]
    shown = check_stream(values)
    assert shown[-1] == 100 and values[-1]["message"] == "2 ok"
    assert result["summary"] == {"ok": 2, "failed": 0, "cancelled": 0}
    assert [(r["project"], r["status"], r["result"]) for r in result["results"]] == [
        (ALPHA, "ok", {"counted": 5}), (BETA, "ok", {"counted": 15})]
    assert set(client.values) == {"tok"}, "child tokens never reach the editor"
    narrated = [v.get("message", "") for v in values]
    assert any(re.match(r"\d/2 · count · (alpha|beta): item \d+", m) for m in narrated), narrated


async def test_server_created_token_for_execute_command(client: RecordingClient) -> None:
    await run_batch(client, actions=["count"], projects=[ALPHA])  # the handler is imported
    before = len(client.created)
    result = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="finecode.runAction", arguments=[{"action": "count", "projects": [ALPHA]}])))
    assert result["summary"]["ok"] == 1
    assert len(client.created) == before + 1
    values = client.values[client.created[-1]]
    shown = check_stream(values)
    assert shown and shown[-1] == 100, "a single child with a declared total is measurable"


async def test_execute_command_honours_the_request_token(client: RecordingClient) -> None:
    client.values.setdefault("cmd", [])
    result = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="finecode.runBatch", arguments=[{"actions": ["count", "quiet"]}],
        work_done_token="cmd")))
    assert result["summary"]["ok"] == 4 and client.created == []
    assert check_stream(client.values["cmd"])[-1] == 100


async def test_refused_token_runs_silently(client: RecordingClient) -> None:
    client.refuse_create = True
    result = plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="finecode.runAction", arguments=[{"action": "count"}])))
    assert result["summary"]["ok"] == 2
    assert dict(client.values) == {}


async def test_client_without_capability_gets_results_and_no_progress(
        blind_client: RecordingClient) -> None:
    result = plain(await blind_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="finecode.runAction", arguments=[{"action": "count"}])))
    assert result["summary"]["ok"] == 2
    assert blind_client.created == [] and dict(blind_client.values) == {}


async def test_weighting_follows_declared_totals(client: RecordingClient) -> None:
    """alpha: 10 units, fast; beta: 30 units, slow. alpha done ⇒ ~25% + beta's progress."""
    await run_batch(client, actions=["count"], params={"n": 10}, workDoneToken="w")
    values = client.values["w"]
    check_stream(values)
    after_first = [v for v in values if v.get("message", "").startswith("1/2")]
    assert after_first, values
    # While beta runs, the bar counts units over all 40 (alpha's 10 done), not half a bar per
    # child (which would show 50% + beta's share); earlier runs' times in this server may hold
    # it back, or lead the counted work by at most 10 points (docs/progress.md).
    for value in after_first:
        item = re.search(r"beta: item (\d+)$", value["message"])
        if item is not None:
            units = 100 * (10 + int(item[1]) + 1) / 40
            assert value["percentage"] <= units + 10, (value, units)


async def test_single_untotalled_child_is_indeterminate(client: RecordingClient) -> None:
    await run_batch(client, actions=["untotalled"], workDoneToken="u")
    assert check_stream(client.values["u"]) == []
    assert client.values["u"][-1]["message"] == "1 ok"


async def test_late_total_never_pushes_the_bar_back(client: RecordingClient) -> None:
    await run_batch(client, actions=["late_total", "count"], projects=[ALPHA],
                    workDoneToken="late")
    shown = check_stream(client.values["late"])
    assert shown[-1] == 100


async def test_several_actions_times_several_projects(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["count", "quiet", "slow"], projects=[ALPHA, BETA],
                             params={"n": 2}, options={"timeout": 0.5}, workDoneToken="grid")
    pairs = [(r["project"], r["action"], r["status"]) for r in result["results"]]
    assert pairs == [(ALPHA, "count", "ok"), (ALPHA, "quiet", "ok"), (ALPHA, "slow", "failed"),
                     (BETA, "count", "ok"), (BETA, "quiet", "ok"), (BETA, "slow", "failed")]
    assert "timed out after 0.5 s" in result["results"][2]["error"]
    check_stream(client.values["grid"])
    assert client.values["grid"][-1]["message"] == "4 ok, 2 failed"


async def test_partial_results_stream_alongside_progress(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["count", "quiet"], workDoneToken="pp",
                             partialResultToken="parts")
    assert result["summary"] == {"ok": 4, "failed": 0, "cancelled": 0}
    assert [e["project"] for e in result["config_errors"]] == [str(WORKSPACE / "broken")], \
        "config errors are not entries: they stay in the response"
    assert set(result) == {"summary", "config_errors"}
    parts = client.values["parts"]
    assert len(parts) == 4 and all(len(p["results"]) == 1 for p in parts)
    assert {(p["results"][0]["project"], p["results"][0]["action"]) for p in parts} == {
        (ALPHA, "count"), (ALPHA, "quiet"), (BETA, "count"), (BETA, "quiet")}
    assert check_stream(client.values["pp"])[-1] == 100


async def test_a_failing_handler_keeps_the_others(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["boom"], workDoneToken="f")
    by_project = {r["project"]: r for r in result["results"]}
    assert by_project[BETA]["status"] == "ok"
    failed = by_project[ALPHA]
    assert failed["status"] == "failed" and "ValueError: the widget is broken" in failed["error"]
    check_stream(client.values["f"])
    assert client.values["f"][-1]["message"] == "1 ok, 1 failed"
    assert (await run_batch(client, actions=["quiet"]))["summary"]["ok"] == 2


async def test_stop_on_failure_sequential(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["boom", "quiet"], projects=[ALPHA],
                             options={"concurrent": False, "stopOnFailure": True},
                             workDoneToken="s")
    assert [r["status"] for r in result["results"]] == ["failed", "cancelled"]
    assert "first failure" in result["results"][1]["error"]
    assert 100 not in check_stream(client.values["s"]), "stopping is not completing"


async def test_stop_on_failure_concurrent_never_shows_100(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["slow", "boom"], projects=[ALPHA],
                             options={"stopOnFailure": True}, workDoneToken="sc")
    assert sorted(r["status"] for r in result["results"]) == ["cancelled", "failed"]
    shown = check_stream(client.values["sc"])
    # Each action weighs half: the failed `boom` is finished work, the stopped `slow` is not.
    assert max(shown) < 75, f"a stopped run must not leap to the end: {shown}"


async def test_cancel_request_on_a_sequential_batch(client: RecordingClient) -> None:
    client.values.setdefault("seq", [])
    task = asyncio.create_task(client.protocol.send_request_async(
        "runBatch", {"actions": ["slow"], "options": {"concurrent": False},
                     "workDoneToken": "seq"}, msg_id="seq-cancel"))
    while len(client.values["seq"]) < 2:
        await asyncio.sleep(0.01)
    client.protocol.notify("$/cancelRequest", types.CancelParams(id="seq-cancel"))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.code == -32800
    entries = plain(info.value.data)["results"]
    assert [(r["project"], r["status"]) for r in entries] == [(ALPHA, "cancelled"),
                                                               (BETA, "cancelled")]
    assert entries[1]["error"].startswith("not run")
    check_stream(client.values["seq"])
    assert client.values["seq"][-1]["message"].startswith("cancelled")


@pytest.mark.parametrize(("params", "fragment"), [
    ({"actions": ["nope"]}, "unknown action 'nope'"),
    ({"actions": ["count"], "projects": ["/elsewhere/proj"]}, "outside the workspace"),
    ({"actions": ["count"], "projects": ["relative/path"]}, "must be absolute"),
    ({"actions": ["count"], "projects": [str(WORKSPACE / "plain")]}, "not a FineCode project"),
    # A broken project declares `lint` only: `count` is unknown for it.
    ({"actions": ["count"], "projects": [str(WORKSPACE / "broken")]},
     "unknown action 'count': no selected project defines it (defined: lint)"),
    ({"actions": "count"}, "'actions' must be a list"),
    ({}, "needs 'actions'"),
    ({"actions": ["count"], "options": {"bogus": 1}}, "unknown option(s) bogus"),
    ({"actions": ["count"], "options": {"timeout": -1}}, "positive number"),
    ({"actions": ["count"], "workDoneToken": 1.5}, "ProgressToken"),
    ({"actions": ["count"], "params": [1, 2]}, "'params' must be an object"),
    ({"actions": ["count"], "params": 0}, "'params' must be an object"),
    ({"actions": ["count"], "options": []}, "'options' must be an object"),
    ({"actions": ["count"], "project": [ALPHA]}, "unknown field(s) project"),
    ({"actions": ["count"], "projects": ["/tmp/nul\x00byte"]}, "cannot be used"),
    ({"actions": ["count"], "options": {"timeout": 10**400}}, "positive number"),
])
async def test_bad_input_is_invalid_params(client: RecordingClient, params: dict[str, Any],
                                           fragment: str) -> None:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async("runBatch", params)
    assert info.value.code == -32602 and fragment in info.value.message, info.value.message
    assert (await run_batch(client, actions=["quiet"]))["summary"]["ok"] == 2, "still serving"


async def test_bad_command_arguments_are_invalid_params(client: RecordingClient) -> None:
    for command, arguments in (("finecode.runAction", [{}]), ("finecode.runAction", []),
                               ("finecode.runAction", [{"action": "count",
                                                        "partialResultToken": "p"}]),
                               ("finecode.runBatch", [{"actions": ["count"],
                                                       "workDoneToken": "x"}]),
                               ("finecode.nothing", [])):
        with pytest.raises(JsonRpcException) as info:
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=command, arguments=arguments))
        assert info.value.code == -32602, (command, info.value)


async def test_token_in_use_is_rejected(client: RecordingClient) -> None:
    client.values.setdefault("busy", [])
    first = asyncio.create_task(client.protocol.send_request_async(
        "runBatch", {"actions": ["slow"], "workDoneToken": "busy", "options": {"timeout": 1}}))
    while not client.values["busy"]:
        await asyncio.sleep(0.01)
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async(
            "runBatch", {"actions": ["quiet"], "workDoneToken": "busy"})
    assert info.value.code == -32602 and "already in use" in info.value.message
    await first
    check_stream(client.values["busy"])


async def test_cancel_request_answers_request_cancelled_with_finished_results(
        client: RecordingClient) -> None:
    client.values.setdefault("c", [])
    task = asyncio.create_task(client.protocol.send_request_async(
        "runBatch", {"actions": ["quiet", "slow"], "workDoneToken": "c"}, msg_id="cancel-me"))
    while not any(v.get("message", "").startswith("2/4") for v in client.values["c"]):
        await asyncio.sleep(0.01)
    client.protocol.notify("$/cancelRequest", types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException) as info:
        await task
    assert info.value.code == -32800
    data = plain(info.value.data)
    statuses = sorted((r["action"], r["status"]) for r in data["results"])
    assert statuses == [("quiet", "ok"), ("quiet", "ok"), ("slow", "cancelled"),
                        ("slow", "cancelled")]
    check_stream(client.values["c"])
    assert client.values["c"][-1]["message"].startswith("cancelled")


async def test_progress_cancel_answers_normally_with_statuses(client: RecordingClient) -> None:
    client.values.setdefault("pc", [])
    task = asyncio.create_task(run_batch(client, actions=["slow"], workDoneToken="pc"))
    while len(client.values["pc"]) < 2:
        await asyncio.sleep(0.01)
    assert client.values["pc"][0]["cancellable"] is True
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token="pc"))
    result = await task
    assert result["summary"] == {"ok": 0, "failed": 0, "cancelled": 2}
    check_stream(client.values["pc"])
    assert client.values["pc"][-1]["message"] == "cancelled: 2 cancelled"


async def test_progress_cancel_on_a_server_created_token(client: RecordingClient) -> None:
    """What VS Code and Neovim do: no token on the command, Cancel on the created one."""
    task = asyncio.create_task(client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="finecode.runAction", arguments=[{"action": "slow"}])))
    while not client.created or len(client.values[client.created[0]]) < 3:
        await asyncio.sleep(0.01)
    token = client.created[0]
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = plain(await task)
    assert result["summary"] == {"ok": 0, "failed": 0, "cancelled": 2}
    shown = check_stream(client.values[token])
    assert shown[-1] < 50, f"cancelling must not make the bar leap forward: {shown}"
    assert client.values[token][-1]["message"] == "cancelled: 2 cancelled"


async def test_misbehaving_child_cannot_break_the_stream(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["flood", "quiet"], projects=[ALPHA],
                             params={"n": 5000}, workDoneToken="m")
    assert result["summary"]["ok"] == 2
    shown = check_stream(client.values["m"])
    assert len(client.values["m"]) < 40
    assert shown[-1] == 100
    await asyncio.sleep(0.1)
    logs = " ".join(m.message for m in client.log_messages)
    assert "second begin" in logs and "report before begin" in logs


async def test_crashed_runner_fails_its_child_and_restarts(client: RecordingClient) -> None:
    result = await run_batch(client, actions=["crash", "quiet"], projects=[ALPHA],
                             workDoneToken="x")
    crash = result["results"][0]
    assert crash["status"] == "failed" and "code 3" in crash["error"]
    assert "about to die" in crash["error"]
    check_stream(client.values["x"])
    assert (await run_batch(client, actions=["quiet"]))["summary"]["ok"] == 2


async def test_runners_stop_on_shutdown(client: RecordingClient) -> None:
    await run_batch(client, actions=["quiet"])
    pids = runner_pids(client)
    assert len(pids) >= 2
    await client.shutdown_session()
    for _ in range(100):
        if all(gone(p) for p in pids):
            break
        await asyncio.sleep(0.05)
    assert all(gone(p) for p in pids), "runner processes outlived the WM"
    assert client._server.returncode == 0


@pytest_lsp.fixture(config=CONFIG)
async def capped_client(lsp_client: RecordingClient) -> AsyncIterator[None]:
    """One child at a time and at most one live runner."""
    await lsp_client.initialize_session(init_params(warm=False, maxParallel=1, maxRunners=1))
    yield
    await lsp_client.shutdown_session()


async def test_runner_cap_bounds_processes_not_the_workspace(
        capped_client: RecordingClient) -> None:
    for _ in range(2):
        result = await run_batch(capped_client, actions=["count", "quiet"], workDoneToken=None)
        assert result["summary"] == {"ok": 4, "failed": 0, "cancelled": 0}
    live = [p for p in runner_pids(capped_client) if not gone(p)]
    assert len(live) <= 1, live
