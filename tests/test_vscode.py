"""The example VS Code extension (examples/vscode): it compiles, and it works in real VS Code.

The end-to-end test runs code-server (VS Code in the browser) with the packaged extension and
drives it with Playwright in Debian's Chromium, as a person would: command palette, quick pick,
the progress notification, its Cancel button, the Problems panel. `bash tests/vscode/setup.sh`
installs all of it (cached outside the repository); without it the test is skipped and says so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from .conftest import EXAMPLES, copy_examples
from .rules import gone
from .vscode import cache
from .vscode.editor import CodeServer, Workbench

EXTENSION = cache.EXTENSION
RESULT = re.compile(r"FineCode: \d+ ok, \d+ failed, \d+ cancelled")
# The Problems panel's rows: a file ("1 problems in file x.py of folder small/pkg", its
# aria-label) and a finding (its text: message, source, code, position).
FILE_ROW = re.compile(r"in file (?P<name>.+) of folder (?P<folder>.+)$")
FINDING_ROW = re.compile(
    r"^(?P<message>.*)finecode(?P<code>[A-Z]+\d+)\[Ln (?P<line>\d+), Col (?P<column>\d+)\]$")
Shown = tuple[str, str, int, int, str]  # a finding row: file, code, line, column, message
COMMAND_IDS = ("finecode.runAction", "finecode.runBatch", "finecode.listProjects")

# A project-local handler for the workspace copy: steady progress, long enough to watch/cancel.
PACE_HANDLER = '''\
import asyncio


async def run(params, ctx):
    steps, delay = ctx.config["steps"], ctx.config["delay"]
    async with ctx.progress("Pacing", total=steps, cancellable=True) as progress:
        for step in range(steps):
            await asyncio.sleep(delay)
            await progress.advance(1, message=f"step {step + 1}/{steps}")
    return {"steps": steps}
'''
PACE = '''
[tool.finecode.actions.pace]
handlers = [{ source = "pace:run", config = { steps = 20, delay = 0.1 } }]
'''
CRAWL = '''
[tool.finecode.actions.crawl]
handlers = [{ source = "pace:run", config = { steps = 600, delay = 0.1 } }]
'''


def _run(args: list[str], cwd: Path) -> None:
    try:
        subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, timeout=240)
    except subprocess.CalledProcessError as exc:
        pytest.fail(
            f"{' '.join(args)} exited with {exc.returncode}\n"
            f"--- stdout\n{exc.stdout}\n--- stderr\n{exc.stderr}",
            pytrace=False,
        )


@pytest.mark.timeout(300)
def test_extension_compiles(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot build the VS Code extension example")
    work = tmp_path / "vscode"
    shutil.copytree(EXTENSION, work, ignore=shutil.ignore_patterns("node_modules", "out"))
    assert (work / "package-lock.json").is_file(), "examples/vscode must ship a package-lock.json"

    _run([npm, "ci", "--no-audit", "--no-fund"], work)
    _run([npm, "run", "compile"], work)

    compiled = work / "out" / "extension.js"
    assert compiled.is_file()
    source = compiled.read_text(encoding="utf-8")
    for command in (*COMMAND_IDS, "finecode.runActionPick", "finecode.runBatchPick"):
        assert f'"{command}"' in source, f"{command} missing from out/extension.js"


# -- real VS Code ------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the example workspace (nothing is written into the repository), with a paced
    action in two projects (`pace`, ~2 s) and a long one in one project (`crawl`, to cancel)."""
    root = copy_examples(tmp_path / "workspace")
    for name, actions in (("small", PACE + CRAWL), ("medium", PACE)):
        project = root / name
        (project / "pace.py").write_text(PACE_HANDLER, encoding="utf-8")
        with (project / "pyproject.toml").open("a", encoding="utf-8") as toml:
            toml.write(actions)
    return root


@pytest.fixture
def code_server(tmp_path: Path) -> Iterator[CodeServer]:
    reason = cache.missing()
    if reason is not None:
        pytest.skip(f"VS Code end-to-end set-up missing ({reason}); enable: {cache.ENABLE}")
    server = CodeServer(tmp_path / "code-server", cache.code_server_entry(), cache.vsix(), {
        "finecode.serverCommand": [str(Path(sys.executable).parent / "finecode-wm"), "lsp"],
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "chat.disableAIFeatures": True,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
    })
    try:
        yield server
    finally:
        server.stop()
        server.kill_all()


def _run_and_watch(workbench: Workbench, picks: list[str],
                   on_progress: Callable[[dict[str, Any]], bool] | None = None,
                   timeout: float = 60) -> tuple[list[float], str]:
    """Run "FineCode: Run batch…" with `picks`; follow its notification to the result message.

    Returns the percentages the bar showed, in order, and the result message (the first new
    `FineCode: N ok, …` toast). `on_progress(toast)` sees each sample of the progress toast until
    it returns True.
    """
    title = f"FineCode: {', '.join(picks)}"
    before = {toast["message"] for toast in workbench.notifications()}
    workbench.run_command("FineCode: Run batch", picks)
    shown: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for toast in workbench.notifications():
            if toast["message"].startswith(title) and "Cancel" in toast["buttons"]:
                if toast["percentage"] is not None and (
                        not shown or shown[-1] != toast["percentage"]):
                    shown.append(toast["percentage"])
                if on_progress is not None and on_progress(toast):
                    on_progress = None
            elif RESULT.match(toast["message"]) and toast["message"] not in before:
                return shown, toast["message"]
        time.sleep(0.05)
    raise AssertionError(f"no result message for {title!r} within {timeout} s; "
                         f"bar showed {shown}; toasts: {workbench.notifications()}")


def _expected_lint() -> list[tuple[str, str]]:
    """(file, code) of every lint finding in the workspace copy: the example's expected.json
    (the copy's pace.py handlers are clean under the projects' `select = ["E", "F"]`)."""
    expected = json.loads((EXAMPLES / "expected.json").read_text(encoding="utf-8"))
    return sorted((f"{project}/{finding['path']}", finding["code"])
                  for project, results in expected.items() for finding in results["lint"])


def _findings(problems: dict[str, Any]) -> list[Shown]:
    """The finding rows the panel shows, as (file, code, line, column, message)."""
    found: list[Shown] = []
    file = "?"
    for row in problems["rows"]:
        if row["level"] == 1:
            match = FILE_ROW.search(row["label"])
            file = f"{match['folder']}/{match['name']}" if match else f"? {row['label']}"
        elif (match := FINDING_ROW.match(row["text"])) is not None:
            found.append((file, match["code"], int(match["line"]), int(match["column"]),
                          match["message"]))
        else:
            found.append((file, "?", 0, 0, row["text"]))
    return found


def _problems_after_run(workbench: Workbench, timeout: float = 15) -> list[Shown]:
    """Open the Problems panel, maximized so its tree renders every row, and wait until it
    shows exactly the expected lint findings, with its tab and the status bar counting them."""
    expected = _expected_lint()
    workbench.command("Problems: Focus on Problems View")
    workbench.command("View: Toggle Maximized Panel")
    deadline = time.monotonic() + timeout
    while True:
        problems = workbench.problems()
        findings = _findings(problems)
        if (sorted((file, code) for file, code, *_ in findings) == expected
                and problems["badge"] == str(len(expected))
                and problems["status"] == f"Warnings: {len(expected)}"):
            return findings
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the Problems panel does not show the {len(expected)} lint findings "
                f"{expected} within {timeout} s; tab badge {problems['badge']!r}, status bar "
                f"{problems['status']!r}, rows: {findings}")
        time.sleep(0.1)


@pytest.mark.timeout(240)
def test_batch_in_real_vscode_shows_notification_progress_and_cancels(
        workspace: Path, code_server: CodeServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = code_server.start()
    server_processes: dict[int, str] = {}
    artifacts = tmp_path / "screenshots"
    artifacts.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(cache.CHROMIUM),
                                             args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        workbench = Workbench(page)
        try:
            workbench.open(url, workspace)
            code_server.wait_for_finecode()

            def note_processes(_toast: object = None) -> bool:
                for process in code_server.finecode_processes():
                    try:
                        kind = "runner" if "finecode_er" in process.cmdline() else "server"
                    except psutil.Error:
                        continue
                    server_processes[process.pid] = kind
                return False

            # A run to completion: the notification's bar rises and never goes back.
            note_processes()

            shown, final = _run_and_watch(workbench, ["lint", "pace", "stats"], note_processes)
            assert final == "FineCode: 8 ok, 0 failed, 0 cancelled", final
            assert len(shown) >= 2 and shown == sorted(shown), f"bar went back: {shown}"
            assert 0 < shown[-1] <= 100, shown
            print(f"bar of the full run: {shown}; result: {final!r}")

            # The lint findings show in the Problems panel, each once, where ruff puts them.
            # (VS Code pulls workspace diagnostics as soon as the server starts, so they may be
            # there before the run; the run's pushes and refresh must neither double nor drop
            # them.)
            started = time.monotonic()
            findings = _problems_after_run(workbench)
            print(f"Problems panel complete {time.monotonic() - started:.1f} s after the "
                  f"result: {len(findings)} findings")
            assert ("small/tinytools/lease_events.py", "F401", 5, 23,
                    "`functools.partial` imported but unused") in findings, findings

            # A long run, cancelled from the notification: it ends "cancelled", promptly.
            page.screenshot(path=str(artifacts / "before-cancel.png"))
            cancel_at: list[float] = []

            def cancel_once_moving(toast: dict[str, Any]) -> bool:
                if (toast["percentage"] or 0) >= 2:  # moving, and the toast has settled
                    page.screenshot(path=str(artifacts / "notification.png"))
                    workbench.click_cancel("FineCode: crawl")
                    cancel_at.append(time.monotonic())
                    return True
                return False

            _, final = _run_and_watch(workbench, ["crawl"], cancel_once_moving)
            assert cancel_at, "the bar of the long run never moved"
            print(f"cancelled run: {final!r}, {time.monotonic() - cancel_at[0]:.1f} s after Cancel")
            assert final == "FineCode: 0 ok, 0 failed, 1 cancelled (run cancelled)", final
        except BaseException:
            page.screenshot(path=str(artifacts / "failure.png"))
            print(f"screenshots of the failing run: {artifacts}")
            raise
        finally:
            browser.close()

    # The browser is gone and code-server stops: the server (stdin closed) and its runners exit.
    assert sorted(set(server_processes.values())) == ["runner", "server"], server_processes
    code_server.stop()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(map(gone, server_processes)):
        time.sleep(0.2)
    left = {pid: kind for pid, kind in server_processes.items() if not gone(pid)}
    assert not left, f"left running after code-server stopped: {left}"
