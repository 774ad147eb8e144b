"""The long-running example actions end to end — `test`, `discover_tests`, `prepare_env`, and
`check` delegating to `test` — on a generated workspace (passing, failing and uncollectable
tests, a conftest that does not import), through LSP, the terminal and MCP; the bar during `test`
against the tests really finished; cancel stopping pytest; `check` over the example workspace.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig

from .conftest import EXAMPLES, copy_examples, probe_env
from .generated import (
    EXPECTED_IDS,
    EXPECTED_TEST_FINDINGS,
    NO_PLUGINS,
    PROJECTS,
    finding_rows,
    make_test_workspace,
    marked,
    offline_uv,
    tiny_index,
)
from .lsp_client import RecordingClient, init_params, make_client
from .rules import check_stream, gone
from .test_lsp import run_batch
from .test_mcp import McpServer, call, strictly_increasing, text

pytestmark = pytest.mark.timeout(90)

ACTIONS = ["prepare_env", "discover_tests", "test", "check"]
# Offline uv for every server these tests start: the projects depend on a tiny local wheel.
SCRATCH = Path(tempfile.mkdtemp(prefix="finecode-long-actions-"))
WHEELS = tiny_index(SCRATCH / "wheels")
ENV = {**probe_env(), **offline_uv(WHEELS, SCRATCH / "uv-cache")}
CONFIG = ClientServerConfig(server_command=[sys.executable, "-m", "finecode_wm", "lsp"],
                            server_env=ENV, client_factory=make_client)


def by(results: list[dict[str, Any]], ws: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Result entries by (project name, action)."""
    return {(Path(e["project"]).relative_to(ws).as_posix(), e["action"]): e for e in results}


def check_results(entries: dict[tuple[str, str], dict[str, Any]]) -> None:
    """What every front end must return for `ACTIONS` over the generated workspace."""
    assert {key: e["status"] for key, e in entries.items()} == \
        {(p, a): "ok" for p in PROJECTS for a in ACTIONS}
    found = sorted(row for p in PROJECTS for row in finding_rows(p, entries[p, "test"]["result"]))
    assert found == EXPECTED_TEST_FINDINGS
    for p in PROJECTS:
        assert entries[p, "discover_tests"]["result"]["tests"] == EXPECTED_IDS[p]
        env = entries[p, "prepare_env"]["result"]
        assert sorted(env["installed"]) == ["tiny-a", "tiny-b"] and env["created"], env
        checked, tested = entries[p, "check"]["result"], entries[p, "test"]["result"]
        assert checked["actions"] == {"test": {"ok": 1, "failed": 0, "cancelled": 0}}
        assert sorted(finding_rows(p, checked)) == sorted(finding_rows(p, tested))
    beta = entries["beta", "test"]["result"]
    assert (beta["passed"], beta["failed"], beta["errors"]) == (1, 2, 1)
    assert entries["alpha", "test"]["result"]["skipped"] == 1


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: RecordingClient, tmp_path: Path) -> AsyncIterator[None]:
    ws = make_test_workspace(tmp_path / "ws", dependencies=("tiny-a",))
    lsp_client.ws = ws  # type: ignore[attr-defined]
    await lsp_client.initialize_session(init_params(root=ws, warm=False, maxParallel=3,
                                                    trusted=True))
    yield
    await lsp_client.shutdown_session()


async def test_lsp_runs_each_action_and_pushes_findings_at_their_lines(
        client: RecordingClient) -> None:
    ws: Path = client.ws  # type: ignore[attr-defined]
    result = await run_batch(client, actions=ACTIONS, workDoneToken="all")
    check_results(by(result["results"], ws))
    shown = check_stream(client.values["all"])
    assert shown and shown[-1] == 100, "16 children: determinate, and complete"
    pushed = {(Path(types_uri_path(uri)).relative_to(ws).as_posix(), d.range.start.line + 1,
               d.code, d.severity) for uri, ds in client.diagnostics.items() for d in ds}
    assert {(f"{p}/{path}", line, code, types.DiagnosticSeverity.Error)
            for p, path, line, code in EXPECTED_TEST_FINDINGS} <= pushed
    # A pull of the failing test file answers from the same results.
    beta = ws / "beta" / marked("beta", "test_wrong")[0]
    report = await client.text_document_diagnostic_async(types.DocumentDiagnosticParams(
        text_document=types.TextDocumentIdentifier(uri=beta.as_uri())))
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert sorted({(d.range.start.line + 1, d.code) for d in report.items}) == sorted(
        (line, code) for p, _path, line, code in EXPECTED_TEST_FINDINGS if p == "beta")


def types_uri_path(uri: str) -> str:
    return uri.removeprefix("file://")


PACED = """import pathlib
import time

import pytest

STAMPS = pathlib.Path({stamps!r})


@pytest.mark.parametrize("n", range({count}))
def test_paced(n):
    time.sleep({seconds})
    with STAMPS.open("a") as out:
        out.write(f"{{time.monotonic()}}\\n")
"""


def paced_workspace(root: Path, counts: dict[str, int], seconds: float) -> Path:
    """Projects whose tests each take `seconds` and note when they finished (one file per
    project, monotonic clock: the same clock as the client's arrival times)."""
    for name, count in counts.items():
        tests = root / name / "tests"
        tests.mkdir(parents=True)
        (tests / "test_paced.py").write_text(PACED.format(
            stamps=str(root / f"{name}.stamps"), count=count, seconds=seconds))
        (root / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "0"\n\n[tool.finecode.actions.test]\n'
            f'handlers = [{{ source = "finecode_examples.testing:test", config = {NO_PLUGINS} }}]'
            "\n")
    return root


@pytest_lsp.fixture(config=CONFIG)
async def paced(lsp_client: RecordingClient, tmp_path: Path) -> AsyncIterator[None]:
    ws = paced_workspace(tmp_path / "ws", {"short": 10, "long": 20}, 0.25)
    lsp_client.ws = ws  # type: ignore[attr-defined]
    await lsp_client.initialize_session(init_params(root=ws, warm=False))
    yield
    await lsp_client.shutdown_session()


async def test_lsp_bar_tracks_the_tests_that_finished(paced: RecordingClient) -> None:
    """After both projects collected, each percentage is within 10 points of the fraction of
    tests really finished (30 tests in all), allowing 0.5 s for the value to travel from the
    test to the client (two pacers of 0.1 s, three pipes)."""
    ws: Path = paced.ws  # type: ignore[attr-defined]
    result = await run_batch(paced, actions=["test"], workDoneToken="paced")
    assert [e["result"]["passed"] for e in result["results"]] == [20, 10]
    values, stamps = paced.values["paced"], paced.stamps["paced"]
    shown = check_stream(values)
    finished = {name: sorted(map(float, (ws / f"{name}.stamps").read_text().split()))
                for name in ("short", "long")}
    every = sorted(finished["short"] + finished["long"])
    collected = max(times[0] for times in finished.values())  # both ran a test: both collected
    compared = 0
    for value, at in zip(values, stamps, strict=True):
        if "percentage" not in value or value["kind"] != "report" or not \
                collected <= at <= every[-1]:
            continue
        low = sum(t <= at - 0.5 for t in every) / len(every) * 100
        high = sum(t <= at for t in every) / len(every) * 100
        assert low - 10 <= value["percentage"] <= high + 10, (value, at, low, high)
        compared += 1
    assert compared >= 5, f"too few reports while the tests ran: {compared}"
    assert shown[-1] == 100


async def test_lsp_cancel_stops_pytest_within_a_second(client: RecordingClient,
                                                       tmp_path: Path) -> None:
    ws: Path = client.ws  # type: ignore[attr-defined]
    started = tmp_path / "started"
    (ws / "alpha" / "tests" / "test_forever.py").write_text(textwrap.dedent(f"""
        import pathlib
        import time


        def test_forever():
            pathlib.Path({str(started)!r}).write_text("x")
            time.sleep(120)
        """))
    task = asyncio.ensure_future(run_batch(client, actions=["test"], workDoneToken="stop",
                                           projects=[str(ws / "alpha"), str(ws / "beta")]))
    for _ in range(600):
        if started.exists() or task.done():
            break
        await asyncio.sleep(0.05)
    assert started.exists(), "the endless test never started"
    pids = pytest_pids(ws / "alpha")
    assert len(pids) == 1, pids
    cancelled_at = time.monotonic()
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token="stop"))
    while not gone(pids[0]) and time.monotonic() - cancelled_at < 5:
        await asyncio.sleep(0.01)
    took = time.monotonic() - cancelled_at
    assert gone(pids[0]) and took < 1.0, f"pytest still ran {took:.2f} s after the cancel"
    result = await asyncio.wait_for(task, 10)
    statuses = {Path(e["project"]).name: e["status"] for e in result["results"]}
    assert statuses["alpha"] == "cancelled"
    check_stream(client.values["stop"])
    assert client.values["stop"][-1]["message"].startswith("cancelled")
    again = await run_batch(client, actions=["test"], projects=[str(ws / "beta")])
    assert again["summary"]["ok"] == 1, "the next run works"


def pytest_pids(project: Path) -> list[int]:
    """The pytest processes the `test` handler runs in `project`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "finecode_pytest_events" in " ".join(proc.info["cmdline"] or ()) and \
                    proc.cwd() == str(project):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finecode_wm", "run", *args], cwd=ws, env=ENV,
                          capture_output=True, text=True, timeout=80)


def test_cli_runs_each_action_lists_failures_and_exits_1(tmp_path: Path) -> None:
    ws = make_test_workspace(tmp_path / "ws", dependencies=("tiny-a",))
    done = cli(ws, *ACTIONS, "--json")
    assert done.returncode == 1, "failing tests are findings: exit 1"
    check_results(by(json.loads(done.stdout)["results"], ws))
    listing = cli(ws, "test")
    assert listing.returncode == 1
    path, line = EXPECTED_TEST_FINDINGS[0][1:3]
    assert any(row.startswith(f"beta/{path}:{line}:1: test-failed test_wrong failed: ")
               for row in listing.stdout.splitlines()), listing.stdout
    assert "delta/conftest.py:3:1: collection-error cannot collect tests: ModuleNotFoundError" \
        in listing.stdout
    github = cli(ws, "test", "--project", str(ws / "gamma"), "--output-format", "github")
    assert github.stdout.splitlines() == [
        f"::error title=FineCode (collection-error),file={ws}/gamma/tests/test_broken.py,"
        "line=2,col=1::gamma/tests/test_broken.py:2:1: collection-error cannot collect tests: "
        "ModuleNotFoundError: No module named 'not_installed_anywhere'"]
    clean = cli(ws, "test", "--project", str(ws / "alpha"))
    assert clean.returncode == 0, clean.stderr


async def test_mcp_runs_each_action_with_progress_and_findings(tmp_path: Path) -> None:
    ws = make_test_workspace(tmp_path / "ws", dependencies=("tiny-a",))
    server = McpServer(ws, ENV)
    await server.start()
    try:
        seen: list[tuple[float, float | None, str | None]] = []
        result = await call(server, {"actions": ACTIONS}, seen)
        assert result.structured_content is not None
        check_results(by(result.structured_content["results"], ws))
        values = strictly_increasing(seen)
        assert values[-1] == 100 and all(total == 100 for _v, total, _m in seen)
        path, line = EXPECTED_TEST_FINDINGS[0][1:3]
        assert f"beta/{path}:{line}:1: test-failed test_wrong failed: " in text(result)
    finally:
        await server.close()


def test_cli_check_over_the_examples_lints_format_checks_and_tests_with_one_bar(
        tmp_path: Path) -> None:
    ws = copy_examples(tmp_path / "workspace")
    expected = json.loads((EXAMPLES / "expected.json").read_text())
    done = cli(ws, "check", "--exit-zero")
    assert done.returncode == 0, done.stderr
    bar = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert "FineCode: check" in bar[0] and bar[-1].endswith("3 ok"), done.stderr
    listed = done.stdout.splitlines()
    for project, planted in expected.items():
        for failure in planted["tests"]["failed"]:
            assert any(row.startswith(f"{project}/{failure['path']}:{failure['line']}:1: "
                                      f"test-failed {failure['test']} failed") for row in listed)
        for finding in planted["lint"]:
            assert any(row.startswith(f"{project}/{finding['path']}:") and finding["code"] in row
                       for row in listed)
        for path in planted["would_change"]:
            assert f"{project}/{path}:1:1: format would be reformatted by `ruff format`" in listed


async def test_check_delegates_only_the_default_actions_a_project_defines(
        tmp_path: Path) -> None:
    from finecode_examples.check import _actions

    (tmp_path / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\nhandlers = [{ source = "m:f" }]\n'
        '[tool.finecode.actions.format]\nhandlers = [{ source = "m:f" }]\n')
    assert await _actions({}, tmp_path) == ["lint", "format"], "no test action: not delegated"
    assert await _actions({"actions": ["test"]}, tmp_path) == ["test"], "as configured"
    with pytest.raises(ValueError, match="unknown config keys"):
        await _actions({"action": ["lint"]}, tmp_path)
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert await _actions({}, tmp_path) == ["lint", "format", "test"]
