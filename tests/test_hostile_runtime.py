"""A hostile project beside healthy ones, against the real WM on every surface (LSP, CLI, MCP):
bad values, huge output, an editor that leaves mid-run, cancels racing the end, misused tokens,
findings outside the project, and start-up notifications of real editors."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from benchmarks.wm_client import WMClient
from finecode_er.wire import RpcError

from .conftest import probe_env
from .rules import check_stream, waitgone

pytestmark = pytest.mark.timeout(90)
# One server serves most LSP tests (started once: the suite runs on 2 shared cores).
on_module_loop = pytest.mark.asyncio(loop_scope="module")

HOSTILE = textwrap.dedent('''
    [project]
    name = "{name}"
    [tool.finecode.actions.wait]
    handlers = [{{ source = "hostile_handlers:pid" }}]
    [tool.finecode.actions.quiet]
    handlers = [{{ source = "probe_handlers:quiet" }}]
    [tool.finecode.actions.nonfinite]
    handlers = [{{ source = "hostile_handlers:nonfinite" }}]
    [tool.finecode.actions.outside]
    handlers = [{{ source = "hostile_handlers:outside" }}]
    [tool.finecode.actions.findings]
    handlers = [{{ source = "probe_handlers:findings" }}]
''')
BAD_ONLY = textwrap.dedent('''
    [tool.finecode.actions.stderr_line]
    handlers = [{ source = "hostile_handlers:stderr_line" }]
    [tool.finecode.actions.huge]
    handlers = [{ source = "hostile_handlers:huge" }]
    [tool.finecode.actions.cleanup]
    handlers = [{ source = "hostile_handlers:cleanup" }]
''')


def make_workspace() -> Path:
    """`bad` (every hostile action, a symlink out of it) beside two healthy projects."""
    base = Path(tempfile.mkdtemp(prefix="finecode-hostile-")).resolve()
    root = base / "ws"
    for name in ("good1", "good2", "bad"):
        (root / name).mkdir(parents=True)
        (root / name / "pyproject.toml").write_text(
            HOSTILE.format(name=name) + (BAD_ONLY if name == "bad" else ""))
    (base / "elsewhere").mkdir()
    (root / "bad" / "link").symlink_to(base / "elsewhere")
    return root


WS = make_workspace()
BAD, GOOD1, GOOD2 = WS / "bad", WS / "good1", WS / "good2"


def strict(text: str | bytes) -> Any:
    """Parse JSON as strict parsers do (JavaScript, Go, …): NaN or Infinity is an error."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in probe_env().items():
            patch.setenv(key, value)
        yield


class Recorder(WMClient):
    """A raw LSP client that keeps every body the WM wrote and the notifications it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.notified: list[tuple[str, Any]] = []

    async def start(self, workspace: Path, **kwargs: Any) -> dict[str, Any]:
        started = asyncio.get_running_loop().create_task(super().start(workspace, **kwargs))
        while self.conn is None:
            await asyncio.sleep(0)
        dispatch = self.conn._dispatch

        def keep(body: bytes) -> None:
            self.bodies.append(body)
            dispatch(body)

        self.conn._dispatch = keep  # type: ignore[method-assign]
        return await started

    def _on_notification(self, method: str, params: Any) -> None:
        super()._on_notification(method, params)
        if method != "$/progress":
            self.notified.append((method, params))

    def send(self, method: str, params: Any) -> tuple[int, asyncio.Future[Any]]:
        """A request whose id we know (to cancel it by hand)."""
        conn = self.conn
        assert conn is not None
        msg_id = next(conn._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn._pending[msg_id] = future
        conn._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id, future

    def runner_pids(self) -> list[int]:
        return [p.pid for p in self.runner_processes()]

    def logged(self) -> list[str]:
        return [p["message"] for m, p in self.notified if m == "window/logMessage"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wm() -> AsyncIterator[Recorder]:
    client = Recorder()
    await client.start(WS, options={"warmRunners": False, "maxParallel": 3})
    yield client
    pids = client.runner_pids()
    await client.stop()
    assert await waitgone(pids), "no runner outlives the WM"


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {f"{Path(e['project']).name}/{e['action']}": e["status"] for e in result["results"]}


async def healthy(wm: Recorder) -> None:
    """The server answers a healthy request afterwards, on every project."""
    run = await asyncio.wait_for(wm.run_batch(["wait"], token=wm.token()), 20)
    assert run.result["summary"] == {"ok": 3, "failed": 0, "cancelled": 0}, run.result
    assert check_stream([v for _, v in run.progress])[-1] == 100


# -- NaN and Infinity ---------------------------------------------------------------------------

@on_module_loop
async def test_nonfinite_values_reach_the_editor_as_strict_json(wm: Recorder) -> None:
    wm.progress["nf"], wm.progress["nf-p"] = [], []
    result = await asyncio.wait_for(wm.conn.request("runBatch", {  # type: ignore[union-attr]
        "actions": ["nonfinite"], "workDoneToken": "nf", "partialResultToken": "nf-p"}), 20)
    assert result == {"summary": {"ok": 3, "failed": 0, "cancelled": 0}}
    for body in wm.bodies:
        strict(body)  # every message the WM wrote, progress and partial results included
    entries = [v for _, value in wm.progress["nf-p"] for v in value["results"]]
    assert [e["result"] for e in entries] == [
        {"x": None, "y": [None], "z": None, "fine": 1.5}] * 3
    check_stream([v for _, v in wm.progress["nf"]])
    await healthy(wm)


def test_nonfinite_values_in_run_json_are_strict_json() -> None:
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "nonfinite", "--json",
                           "--workspace", str(WS)], capture_output=True, text=True, timeout=60,
                          env=probe_env())
    assert done.returncode == 0, done.stderr
    result = strict(done.stdout)
    assert [e["result"]["y"] for e in result["results"]] == [[None]] * 3


def mcp_exchange(calls: list[dict[str, Any]], workspace: Path = WS) -> list[dict[str, Any]]:
    """Speak raw MCP (newline-delimited JSON) to `finecode-wm mcp`; every line it writes is
    parsed strictly. The answers to `calls`, in order."""
    proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "mcp", "--workspace",
                             str(workspace)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=probe_env(), text=True)
    assert proc.stdin is not None and proc.stdout is not None
    messages = [{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    answers: list[dict[str, Any]] = []
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        assert strict(proc.stdout.readline())["id"] == 0
        for i, params in enumerate(calls, 1):
            proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                         "params": params}) + "\n")
            proc.stdin.flush()
            while True:
                line = strict(proc.stdout.readline())
                if line.get("id") == i:
                    answers.append(line)
                    break
    finally:
        proc.stdin.close()
        proc.wait(20)
    return answers


def test_over_mcp_nonfinite_values_are_strict_json_and_outside_findings_are_dropped() -> None:
    """One server for both (an MCP server per test costs seconds on a loaded machine)."""
    nonfinite, outside = mcp_exchange([
        {"name": "run_actions", "arguments": {"actions": ["nonfinite"]},
         "_meta": {"progressToken": "p"}},
        {"name": "run_actions", "arguments": {"actions": ["outside"], "projects": ["bad"]}}])
    result = nonfinite["result"]["structuredContent"]
    assert [e["result"] for e in result["results"]] == [
        {"x": None, "y": [None], "z": None, "fine": 1.5}] * 3
    text = outside["result"]["content"][0]["text"]
    assert "bad · outside: dropped 3 finding(s) for files outside the project" in text
    assert "/etc/hosts" not in text and "escape.py" not in text


# -- a config value JSON cannot carry --------------------------------------------------------

def dated_workspace() -> Path:
    """Two healthy projects beside one whose handler config holds a TOML date."""
    root = Path(tempfile.mkdtemp(prefix="finecode-dated-")).resolve()
    for name in ("good1", "good2", "dated"):
        (root / name).mkdir()
        config = ', config = { since = 2024-01-02 }' if name == "dated" else ""
        (root / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\n[tool.finecode.actions.quiet]\n'
            f'handlers = [{{ source = "probe_handlers:quiet"{config} }}]\n')
    return root


def check_dated(result: dict[str, Any]) -> None:
    """The healthy projects keep their results; the dated one is ok (its value converted) or
    failed with a message naming the value, never the whole request lost."""
    by_name = {Path(e["project"]).name: e for e in result["results"]}
    assert by_name["good1"]["status"] == by_name["good2"]["status"] == "ok", result
    dated = by_name.get("dated")
    if dated is not None and dated["status"] != "ok":
        assert "date" in dated["error"], dated


def test_a_toml_date_in_one_project_costs_only_that_project_in_the_terminal() -> None:
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "quiet", "--json",
                           "--workspace", str(dated_workspace())], capture_output=True,
                          text=True, timeout=60, env=probe_env())
    check_dated(strict(done.stdout))


def test_a_toml_date_in_one_project_costs_only_that_project_over_mcp() -> None:
    (answer,) = mcp_exchange([{"name": "run_actions", "arguments": {"actions": ["quiet"]}}],
                             dated_workspace())
    assert "result" in answer, answer
    check_dated(answer["result"]["structuredContent"])


@on_module_loop
async def test_a_toml_date_in_one_project_costs_only_that_project_over_lsp() -> None:
    client = Recorder()
    await client.start(dated_workspace(), options={"warmRunners": False})
    try:
        for _ in range(2):  # a re-run fails the same way, and only that way
            run = await asyncio.wait_for(client.run_batch(["quiet"], token=client.token()), 30)
            check_dated(run.result)
            check_stream([v for _, v in run.progress])
    finally:
        pids = client.runner_pids()
        await client.stop()
    assert await waitgone(pids)


# -- huge output ------------------------------------------------------------------------------

@on_module_loop
async def test_a_20_mib_stderr_line_neither_blocks_the_runner_nor_the_next_run(
        wm: Recorder) -> None:
    run = await asyncio.wait_for(wm.run_batch(["stderr_line"], token="big-err"), 30)
    assert run.result["summary"]["ok"] == 1, run.result
    cut = [m for m in wm.logged() if m.endswith("… (line cut at 2000 bytes)")]
    assert len(cut) == 1 and len(cut[0]) < 2100, "the line reached the log, cut to its start"
    await healthy(wm)
    assert len(wm.runner_pids()) <= 3


@on_module_loop
async def test_a_result_over_64_mib_fails_that_child_and_its_runner_serves_on(
        wm: Recorder) -> None:
    first = await wm.run_batch(["wait"], projects=[str(BAD)])
    pid = first.result["results"][0]["result"]
    run = await asyncio.wait_for(wm.run_batch(["huge"], token="huge"), 30)
    (entry,) = run.result["results"]
    assert entry["status"] == "failed"
    assert entry["error"] == "run: result is 65.0 MiB, over the 64 MiB limit"
    assert check_stream([v for _, v in run.progress]) == [], "one child, indeterminate"
    again = await wm.run_batch(["wait"], projects=[str(BAD)])
    assert again.result["results"][0]["result"] == pid, "the same runner kept serving"
    await healthy(wm)
    assert len(wm.runner_pids()) <= 3


def test_huge_output_in_the_terminal_fails_only_the_oversize_child() -> None:
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "huge", "stderr_line",
                           "wait", "--json", "--workspace", str(WS), "--project", str(BAD)],
                          capture_output=True, text=True, timeout=60, env=probe_env())
    assert done.returncode == 1, done.stderr
    result = strict(done.stdout)
    assert statuses(result) == {"bad/huge": "failed", "bad/stderr_line": "ok", "bad/wait": "ok"}
    assert result["results"][0]["error"] == "run: result is 65.0 MiB, over the 64 MiB limit"


@on_module_loop
async def test_params_over_64_mib_fail_every_child_and_nothing_else(wm: Recorder) -> None:
    """An editor may send that much (LSP has no limit); no runner can be sent it."""
    assert wm.conn is not None
    wm.progress["big-params"] = []
    msg_id = next(wm.conn._ids)
    answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    wm.conn._pending[msg_id] = answer
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "runBatch", "params": {
        "actions": ["quiet"], "params": {"blob": "x" * (64 * 1024 * 1024)},
        "workDoneToken": "big-params"}}).encode()
    wm.conn._writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    result = await asyncio.wait_for(answer, 60)
    assert result["summary"] == {"ok": 0, "failed": 3, "cancelled": 0}
    for entry in result["results"]:
        assert entry["error"].startswith("cannot send this run to its runner: its request is ")
        assert entry["error"].endswith("MiB, over the 64 MiB limit")
    check_stream([v for _, v in wm.progress["big-params"]])
    await healthy(wm)


# -- the editor leaves mid-run ----------------------------------------------------------------

@on_module_loop
async def test_closing_stdin_mid_run_lets_handlers_clean_up_and_leaves_no_runner(
        tmp_path: Path) -> None:
    client = Recorder()
    await client.start(WS, options={"warmRunners": False})
    assert client.proc is not None and client.proc.stdin is not None
    marker = tmp_path / "cleaned"
    client.progress["leave"] = []
    client.send("runBatch", {"actions": ["cleanup", "wait"], "params": {
        "marker": str(marker), "seconds": 30}, "workDoneToken": "leave"})
    for _ in range(400):  # until the handler is at work
        if any("Working" in v.get("message", "") for _, v in client.progress["leave"]):
            break
        await asyncio.sleep(0.025)
    pids = client.runner_pids()
    assert pids, "runners are working"
    started = time.monotonic()
    client.proc.stdin.close()
    code = await asyncio.wait_for(client.proc.wait(), 15)
    took = time.monotonic() - started
    assert marker.exists(), "the handler's finally ran before its runner went"
    assert await waitgone(pids, 2), "no runner is left"
    assert code == 1, "no shutdown came: exit code 1, as LSP says"
    assert took < 8, f"the wind-down is bounded ({took:.1f} s)"


# -- a cancel racing the end ------------------------------------------------------------------

@on_module_loop
async def test_cancel_racing_the_end_stream_and_response_always_agree(wm: Recorder) -> None:
    """200 tiny batches, each cancelled at a jittered moment around its end, half through the
    progress token and half through `$/cancelRequest`."""
    for _ in range(3):
        await wm.run_batch(["quiet"])
    started = time.monotonic()
    await wm.run_batch(["quiet"], token="timing")
    typical = time.monotonic() - started
    rng = random.Random(18)
    outcomes = set()
    for i in range(200):
        token = f"race-{i}"
        wm.progress[token] = []
        msg_id, answer = wm.send("runBatch", {"actions": ["quiet"], "workDoneToken": token})
        await asyncio.sleep(rng.uniform(0, 1.5 * typical))
        by_token = i % 2 == 0
        if by_token:
            wm.conn.notify("window/workDoneProgress/cancel", {"token": token})  # type: ignore[union-attr]
        else:
            wm.conn.notify("$/cancelRequest", {"id": msg_id})  # type: ignore[union-attr]
        try:
            result, error = await asyncio.wait_for(answer, 10), None
        except RpcError as exc:
            result, error = exc.data, exc
        finally:
            wm.conn._pending.pop(msg_id, None)  # type: ignore[union-attr]
        values = [v for _, v in wm.progress.pop(token)]
        shown = check_stream(values)
        ended_cancelled = values[-1]["message"].startswith("cancelled")
        outcomes.add(ended_cancelled)
        if by_token:
            assert error is None, (i, error)
        else:
            assert (error is not None) == ended_cancelled, (i, values[-1], error)
            assert error is None or error.code == -32800
        summary = result["summary"]
        if ended_cancelled:
            assert summary["cancelled"] >= 1 and shown[-1] < 100, (i, summary, values[-1])
        else:
            assert summary == {"ok": 3, "failed": 0, "cancelled": 0}, (i, summary, values[-1])
            assert shown[-1] == 100, (i, values)
    assert outcomes == {True, False}, "cancels landed on both sides of the end"
    assert not [m for m in wm.logged() if "ignored cancellation" in m], \
        "every cancelled run was answered: no runner was killed"
    await healthy(wm)


# -- tokens that would mix two streams --------------------------------------------------------

@on_module_loop
async def test_one_token_for_progress_and_partial_results_is_refused(wm: Recorder) -> None:
    with pytest.raises(RpcError) as refused:
        await wm.conn.request("runBatch", {  # type: ignore[union-attr]
            "actions": ["quiet"], "workDoneToken": "same", "partialResultToken": "same"})
    assert refused.value.code == -32602
    assert refused.value.message == (
        "workDoneToken and partialResultToken are the same ('same'): progress and partial "
        "results need a token each; use two different tokens")
    wm.progress["held"] = []
    _, running = wm.send("runBatch", {"actions": ["wait"], "params": {"seconds": 1},
                                      "workDoneToken": "held", "partialResultToken": "held-p"})
    await asyncio.sleep(0.3)
    for token in ("held-p", "held"):
        with pytest.raises(RpcError) as in_use:
            await wm.conn.request("workspace/executeCommand", {  # type: ignore[union-attr]
                "command": "finecode.runAction", "arguments": [{"action": "quiet"}],
                "workDoneToken": token})
        assert in_use.value.code == -32602
        assert in_use.value.message == (f"workDoneToken {token!r} is already in use by a "
                                        "running request; use a fresh token per request")
    assert (await asyncio.wait_for(running, 20))["summary"]["ok"] == 3
    await healthy(wm)


# -- findings outside the project -------------------------------------------------------------

@on_module_loop
async def test_findings_outside_the_project_are_never_published_and_positions_are_bounded(
        wm: Recorder) -> None:
    await wm.run_batch(["outside"], projects=[str(BAD)])
    await asyncio.sleep(0.2)
    published = {p["uri"]: p["diagnostics"] for m, p in wm.notified
                 if m == "textDocument/publishDiagnostics"}
    assert set(published) == {(BAD / "inside.py").as_uri(), (BAD / "abs.py").as_uri()}
    (far,) = published[(BAD / "inside.py").as_uri()]
    assert far["range"]["start"] == {"line": 2**31 - 2, "character": 2**31 - 2}
    assert far["range"]["end"]["line"] == 2**31 - 2
    assert any("bad · outside: dropped 3 finding(s) for files outside the project" in m
               for m in wm.logged()), wm.logged()
    await healthy(wm)


def test_findings_outside_the_project_in_the_terminal() -> None:
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", "outside",
                           "--workspace", str(WS), "--project", str(BAD)], cwd=WS,
                          capture_output=True, text=True, timeout=60, env=probe_env())
    assert done.stdout.splitlines() == [f"bad{os.sep}abs.py:2:1: absolute, inside",
                                        f"bad{os.sep}inside.py:2147483647:2147483647: far down"]
    notes = [line for line in done.stderr.splitlines() if "outside the project" in line]
    assert notes == ["warning: bad · outside: dropped 3 finding(s) for files outside the "
                     "project (a finding's path must be inside its project)"], done.stderr


# -- what real editors send at start ----------------------------------------------------------

@on_module_loop
async def test_did_change_configuration_is_handled_and_can_set_diagnostic_actions(
        tmp_path: Path) -> None:
    """Eglot and coc.nvim send it at start; `settings.finecode.diagnosticActions` is used."""
    client = Recorder()
    stderr = os.open(tmp_path / "stderr", os.O_WRONLY | os.O_CREAT)
    try:
        await client.start(WS, options={"warmRunners": False, "trusted": True}, stderr=stderr)
        assert client.conn is not None
        client.conn.notify("workspace/didChangeConfiguration", {"settings": {}})
        client.conn.notify("workspace/didChangeConfiguration", {"settings": None})
        client.conn.notify("workspace/didChangeConfiguration", {
            "settings": {"finecode": {"diagnosticActions": ["findings"]}}})
        report = await asyncio.wait_for(client.conn.request(
            "workspace/diagnostic", {"previousResultIds": []}), 30)
    finally:
        os.close(stderr)
        pids = client.runner_pids()
        await client.stop()
    assert {Path(item["uri"].removeprefix("file://")).name for item in report["items"]} == {
        "x.py", "y.py"}, "the pull ran the configured action"
    assert await waitgone(pids)
    logged = (tmp_path / "stderr").read_text()
    assert "Ignoring notification" not in logged and "unknown method" not in logged, logged

