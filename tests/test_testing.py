"""The example `test` and `discover_tests` handlers in process, on real pytest children: events,
findings at their lines, progress (collection narrated, a late total, one advance per test),
failures of pytest itself, cancellation; and the event fold against hostile input."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from finecode_examples import _pytest_child, testing
from finecode_examples._test_session import OUTCOMES, Session
from finecode_examples.testing import Options
from hypothesis import given, settings
from hypothesis import strategies as st

from .generated import EXPECTED_IDS, NO_PLUGINS, Recorded, finding_rows, make_test_workspace, marked
from .rules import gone

pytestmark = pytest.mark.timeout(60)

CONFIG = {"env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_workspace(tmp_path_factory.mktemp("ws"))


def project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
    return root


async def run(root: Path, action: str = "test",
              config: dict[str, Any] | None = None) -> tuple[dict[str, Any], Recorded]:
    recorded = Recorded(root, action, CONFIG if config is None else config)
    handler = testing.test if action == "test" else testing.discover_tests
    try:
        result = await handler({}, recorded.ctx)
    finally:
        recorded.end()
    return result, recorded


def pytest_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "finecode_pytest_events" in " ".join(p.cmdline())]


async def test_failures_are_findings_at_their_lines_and_progress_counts_tests(
        workspace: Path) -> None:
    result, recorded = await run(workspace / "beta")
    assert {k: result[k] for k in ("collected", "passed", "failed", "errors", "skipped")} == \
        {"collected": 4, "passed": 1, "failed": 2, "errors": 1, "skipped": 0}
    assert result["summary"].startswith("1 passed, 2 failed, 1 error in ")
    assert sorted(finding_rows("beta", result)) == sorted([
        ("beta", *marked("beta", "test_wrong"), "test-failed"),
        ("beta", *marked("beta", "test_zero"), "test-failed"),
        ("beta", *marked("beta", "test_uses_broken"), "test-error")])
    messages = {d["code"] + ":" + str(d["line"]): d["message"] for d in result["diagnostics"]}
    assert any(m.startswith("test_wrong failed: assert 3.0 == 4") for m in messages.values())
    assert any("ZeroDivisionError" in m for m in messages.values())
    assert all(d["severity"] == "error" and d["column"] == 1 for d in result["diagnostics"])
    # Collection first, indeterminate and narrated; then the late total and one step per test.
    values = recorded.values
    assert values[0]["kind"] == "begin" and "percentage" not in values[0]
    assert "collecting tests" in [v.get("message") for v in recorded.before_total()]
    assert [done for _total, done in recorded.totals()][-1] == 4
    assert {total for total, _done in recorded.totals()} == {4}
    assert values[-1]["kind"] == "end"


async def test_a_module_that_cannot_be_imported_is_a_finding_and_the_rest_runs(
        workspace: Path) -> None:
    result, _ = await run(workspace / "gamma")
    assert result["collection_errors"] == 1 and result["passed"] == 1
    (finding,) = result["diagnostics"]
    assert (finding["path"], finding["line"], finding["code"]) == \
        (*marked("gamma", "test_broken.py"), "collection-error")
    assert "No module named 'not_installed_anywhere'" in finding["message"]


async def test_a_conftest_that_does_not_import_stops_collection_without_failing(
        workspace: Path) -> None:
    result, recorded = await run(workspace / "delta")
    assert result["collected"] == 0 and result["collection_errors"] == 1
    assert result["summary"].startswith("1 collection error in ")
    (finding,) = result["diagnostics"]
    assert (finding["path"], finding["line"]) == marked("delta", "conftest.py")
    assert recorded.totals() == [], "nothing was collected: no total was ever declared"


async def test_discover_tests_returns_the_ids(workspace: Path) -> None:
    for name, ids in EXPECTED_IDS.items():
        result, recorded = await run(workspace / name, "discover_tests")
        assert result["tests"] == ids and result["count"] == len(ids), name
        assert recorded.totals() == [], "discovery runs nothing: no units"
    gamma, _ = await run(workspace / "gamma", "discover_tests")
    assert [d["code"] for d in gamma["diagnostics"]] == ["collection-error"]


async def test_pytest_that_cannot_run_fails_the_action(tmp_path: Path) -> None:
    root = project(tmp_path, {"tests/test_x.py": "def test_x():\n    pass\n"})
    with pytest.raises(RuntimeError, match=r"before collecting tests \(exit code 4, a usage "
                                           r"error: check the action's `args`\): (?s:.*)no-such"):
        await run(root, config={**CONFIG, "args": ["--no-such-option"]})
    with pytest.raises(ValueError, match="unknown config keys"):
        await run(root, config={"argz": []})


async def test_pytest_dying_mid_run_fails_the_action_and_says_how_far_it_got(
        tmp_path: Path) -> None:
    root = project(tmp_path, {"tests/test_x.py": """
        import os


        def test_a():
            pass


        def test_b():
            os._exit(3)


        def test_c():
            pass
        """})
    with pytest.raises(RuntimeError, match=r"stopped after 1/3 tests \(last: .*test_a\) "
                                           r"\(exit code 3\)"):
        await run(root)


async def test_cancel_kills_pytest_and_what_its_tests_started_within_a_second(
        tmp_path: Path) -> None:
    started = tmp_path / "started"
    root = project(tmp_path / "p", {"tests/test_slow.py": f"""
        import pathlib
        import subprocess
        import sys
        import time


        def test_slow():
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            pathlib.Path({str(started)!r}).write_text("x")
            time.sleep(60)
        """})
    task = asyncio.ensure_future(run(root))
    for _ in range(400):
        if started.exists() or task.done():
            break
        await asyncio.sleep(0.05)
    assert started.exists(), "the test never started"
    (pytest_proc,) = pytest_children()
    family = [pytest_proc.pid, *(c.pid for c in pytest_proc.children(recursive=True))]
    assert len(family) == 2, "pytest and the sleeper its test started"
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while not all(gone(pid) for pid in family) and time.monotonic() - cancelled_at < 5:
        await asyncio.sleep(0.01)
    took = time.monotonic() - cancelled_at
    assert all(gone(pid) for pid in family) and took < 1.0, took


async def test_a_process_a_test_leaves_behind_is_stopped_when_pytest_ends(
        tmp_path: Path) -> None:
    """A forked child keeps the event pipe open: the handler still returns, and the child goes
    with pytest's process group."""
    pid_file = tmp_path / "pid"
    root = project(tmp_path / "p", {"tests/test_fork.py": f"""
        import os
        import pathlib
        import time


        def test_fork():
            child = os.fork()
            if child == 0:
                time.sleep(60)
                os._exit(0)
            pathlib.Path({str(pid_file)!r}).write_text(str(child))
        """})
    begun = time.monotonic()
    result, _ = await run(root)
    assert result["passed"] == 1 and time.monotonic() - begun < 20
    leftover = int(pid_file.read_text())
    for _ in range(100):
        if gone(leftover):
            break
        await asyncio.sleep(0.02)
    assert gone(leftover)


def test_options_are_checked() -> None:
    assert Options.parse({}).command(collect_only=True)[:3] == \
        ["-q", "--continue-on-collection-errors", "--collect-only"]
    assert Options.parse({"args": ["-x"], "env": {"A": "1"}}).env == (("A", "1"),)
    for bad in ({"args": "-x"}, {"env": {"A": 1}}, {"env": {"A=B": "1"}}, {"argz": []}):
        with pytest.raises(ValueError):
            Options.parse(bad)
    assert NO_PLUGINS.count("PYTEST_DISABLE_PLUGIN_AUTOLOAD") == 1


# -- the fold, against whatever a child writes -------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
EVENT = st.fixed_dictionaries(
    {"event": st.sampled_from(["collected", "test", "collect_error", "finished", "other"])},
    optional={"ids": JSON | st.lists(st.text(max_size=5), max_size=4),
              "id": JSON | st.text(max_size=5),
              "outcome": JSON | st.sampled_from(OUTCOMES), "path": JSON | st.text(),
              "line": JSON, "message": JSON, "exitstatus": JSON})


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT | JSON, max_size=30))
def test_fold_never_trusts_an_event(events: list[Any]) -> None:
    session = Session(Path("/p"))
    used = [session.fold(event) for event in events]
    assert session.malformed == used.count(None)
    assert session.done == used.count("test") == sum(session.outcomes.values())
    assert set(session.outcomes) <= set(OUTCOMES)
    for finding in session.diagnostics:
        assert isinstance(finding["path"], str) and isinstance(finding["message"], str)
        assert isinstance(finding["line"], int) and finding["line"] >= 1
        assert finding["code"] in {"test-failed", "test-error", "collection-error"}
    json.dumps(session.diagnostics, allow_nan=False)
    session.progress_message()
    session.summary(0.5)


def test_check_tells_a_run_from_a_crash() -> None:
    session = Session(Path("/p"))
    with pytest.raises(RuntimeError, match=r"before collecting tests \(exit code 1\)"):
        session.check(1, "No module named pytest")
    session.fold({"event": "collect_error", "path": "/p/conftest.py", "line": 2})
    session.check(4, "ImportError while loading conftest")  # stopped before collection: ok
    ran = Session(Path("/p"))
    ran.fold({"event": "collected", "ids": []})
    ran.fold({"event": "finished", "exitstatus": 5})
    ran.check(5, "")
    internal = Session(Path("/p"))
    internal.fold({"event": "finished", "exitstatus": 3})
    with pytest.raises(RuntimeError, match=r"did not finish its session .*internal error"):
        internal.check(3, "INTERNALERROR>")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=12),
       st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=8))
def test_lines_are_the_same_however_the_pipe_splits_them(lines: list[bytes],
                                                         cuts: list[int]) -> None:
    """Whole lines come out in order whatever the chunking; lines over the limit are dropped
    whole and the next ones still count."""
    limit = 8
    stream = b"".join(line + b"\n" for line in lines)
    splitter = _pytest_child._Lines(limit)
    out: list[bytes] = []
    position, i = 0, 0
    while position < len(stream):
        size = cuts[i % len(cuts)]
        out += splitter.feed(stream[position:position + size])
        position, i = position + size, i + 1
    assert out == [line for line in lines if len(line) <= limit]


def test_a_line_that_is_not_an_event_is_none() -> None:
    assert _pytest_child._parse(b"[" * 100_000 + b"]" * 100_000) is None
    assert _pytest_child._parse(b"\xff{") is None
    assert _pytest_child._parse(b'{"event": "finished", "exitstatus": 0}') == \
        {"event": "finished", "exitstatus": 0}
