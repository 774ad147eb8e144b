"""A pytest plugin that streams a run's events to FineCode's `test` handler, one JSON object a
line, on a pipe the handler passed down (its fd number in `FINECODE_PYTEST_EVENTS_FD`).

It is loaded into the pytest child with `-p finecode_pytest_events`, from a directory that holds
only this module (put on the child's `PYTHONPATH`), so it works in any environment that has
pytest and shadows nothing of the project's. A pipe of its own keeps the events apart from the
terminal output, which the project's own options and plugins shape as they like.

Events (paths absolute, lines 1-based):

- `{"event": "collect_error", "path", "line", "message"}`: a file that could not be collected
  (an import or syntax error in it, a broken conftest).
- `{"event": "collected", "ids": [...]}`: the tests that will run, after deselection.
- `{"event": "test", "id", "outcome", "path", "line", "message", "duration"}`: one finished
  test; outcome is passed, failed, error (setup or teardown), skipped, xfailed or xpassed.
- `{"event": "finished", "exitstatus"}`: the session ended (missing when pytest died).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

import pytest

ENV = "FINECODE_PYTEST_EVENTS_FD"
MESSAGE_CHARS = 300
# Path parts that mark code which is not the project's own, even under its root.
FOREIGN_PARTS = frozenset({"site-packages", "dist-packages"})


class _Channel:
    """The write end of the handler's pipe; silent when absent or once the reader is gone."""

    def __init__(self) -> None:
        self._out: IO[str] | None = None
        raw = os.environ.get(ENV, "")
        if raw.isdigit():
            try:
                fd = int(raw)
                # Processes the tests start must not hold the pipe open after pytest ends.
                os.set_inheritable(fd, False)
                self._out = os.fdopen(fd, "w", encoding="ascii", buffering=1)
            except OSError:
                self._out = None

    def send(self, event: dict[str, Any]) -> None:
        if self._out is None:
            return
        try:
            self._out.write(json.dumps(event, default=str) + "\n")
        except (OSError, ValueError):
            self._out = None


_channel = _Channel()
_project = Path.cwd()  # the handler starts pytest in the project root
_rootpath = _project  # pytest's rootdir, which test locations are relative to
_failures: dict[str, tuple[int, str]] = {}  # nodeid -> (line in the test file, message)
_collect_origins: dict[str, tuple[str, int, str]] = {}  # nodeid -> (path, line, message)
_outcomes: dict[str, str] = {}
_reasons: dict[str, str] = {}  # nodeid -> why it was skipped
_durations: dict[str, float] = {}


def _short(text: str) -> str:
    """The first line, bounded: findings and progress messages are read at a glance (and the
    lines after an assertion's first one show objects with their addresses)."""
    lines = text.strip().splitlines()
    flat = " ".join(lines[0].split()) if lines else ""
    return flat if len(flat) <= MESSAGE_CHARS else flat[: MESSAGE_CHARS - 1] + "…"


def _own(filename: str) -> Path | None:
    """`filename` when it is the project's own code (under the root, not in an environment)."""
    try:
        path = Path(filename).resolve()
        relative = path.relative_to(_project)
    except (OSError, ValueError):
        return None
    if any(part in FOREIGN_PARTS or part.startswith(".") for part in relative.parts):
        return None
    return path


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    """(file, line) of each frame of `exc`'s traceback, outermost first."""
    return [(frame.f_code.co_filename, line)
            for frame, line in traceback.walk_tb(exc.__traceback__) if line is not None]


def _origin(exc: BaseException) -> tuple[str, int] | None:
    """Where in the project's own code `exc` (or the exception it wraps) arose: a syntax
    error's own position, else the innermost frame in a project file."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SyntaxError) and current.filename and current.lineno:
            own = _own(current.filename)
            if own is not None:
                return str(own), current.lineno
        for filename, line in reversed(_frames(current)):
            own = _own(filename)
            if own is not None:
                return str(own), line
        cause = getattr(current, "cause", None)  # pytest's ConftestImportFailure
        current = cause if isinstance(cause, BaseException) else (
            current.__cause__ or current.__context__)
    return None


def _innermost(exc: BaseException) -> BaseException:
    """The exception a person should read: the one a collection error wraps."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return exc.__cause__ or exc


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    """A conftest that fails to import stops pytest before any collection: report it."""
    try:
        return (yield)
    except Exception as exc:
        path = getattr(exc, "path", None)
        if path is not None:
            cause = _innermost(exc)
            origin = _origin(exc) or (str(path), 1)
            _channel.send({"event": "collect_error", "path": origin[0], "line": origin[1],
                           "message": _short(f"{type(cause).__name__}: {cause}")})
        raise


def pytest_exception_interact(node: pytest.Item | pytest.Collector, call: pytest.CallInfo[Any],
                              report: pytest.CollectReport | pytest.TestReport) -> None:
    """The exception behind a collection error, while it still has its traceback."""
    if isinstance(report, pytest.CollectReport) and call.excinfo is not None:
        exc = call.excinfo.value
        fallback = str(getattr(node, "path", _project))
        path, line = _origin(exc) or (fallback, 1)
        cause = _innermost(exc)
        message = f"{type(cause).__name__}: {cause}" if cause is not exc else str(exc)
        _collect_origins[report.nodeid] = (path, line, _short(message))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if not report.failed:
        return
    origin = _collect_origins.get(report.nodeid)
    if origin is None:
        path = str(_rootpath / report.nodeid.split("::", 1)[0])
        origin = (path, 1, _short(report.longreprtext.strip().splitlines()[-1]
                                  if report.longreprtext.strip() else "collection failed"))
    path, line, message = origin
    _channel.send({"event": "collect_error", "path": path, "line": line, "message": message})


def pytest_collection_finish(session: pytest.Session) -> None:
    _channel.send({"event": "collected", "ids": [item.nodeid for item in session.items]})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Where a failing test failed, in its own file: the traceback is only here."""
    report = yield
    if report.failed and call.excinfo is not None and item.nodeid not in _failures:
        exc = call.excinfo.value
        test_file = str(item.path)
        lines = [line for filename, line in _frames(exc) if filename == test_file]
        message = call.excinfo.exconly(tryshort=True)
        if not lines:
            origin = _origin(exc)
            if origin is not None:
                message += f" (at {os.path.relpath(origin[0], _project)}:{origin[1]})"
        _failures[item.nodeid] = (lines[-1] if lines else 0, _short(message))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    nodeid = report.nodeid
    _durations[nodeid] = _durations.get(nodeid, 0.0) + report.duration
    outcome = _outcomes.get(nodeid)
    if report.failed and outcome not in ("failed", "error"):
        _outcomes[nodeid] = "failed" if report.when == "call" else "error"
    elif report.skipped and outcome is None:
        _outcomes[nodeid] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        if isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
            _reasons[nodeid] = _short(str(report.longrepr[2]))
    elif report.passed and report.when == "call" and outcome is None:
        _outcomes[nodeid] = "xpassed" if hasattr(report, "wasxfail") else "passed"
    if report.when == "teardown":
        _finished(report)


def _finished(report: pytest.TestReport) -> None:
    nodeid = report.nodeid
    outcome = _outcomes.pop(nodeid, "passed")
    relative, def_line, _domain = report.location
    line, message = (def_line + 1) if def_line is not None else 1, ""
    if outcome in ("failed", "error"):
        failed_at, message = _failures.pop(nodeid, (0, ""))
        line = failed_at or line
        if not message:
            message = _short(report.longreprtext.strip().splitlines()[-1]
                             if report.longreprtext.strip() else outcome)
    else:
        message = _reasons.pop(nodeid, "")
    _channel.send({"event": "test", "id": nodeid, "outcome": outcome,
                   "path": str(_rootpath / relative), "line": line, "message": message,
                   "duration": round(_durations.pop(nodeid, 0.0), 6)})


def pytest_sessionstart(session: pytest.Session) -> None:
    global _rootpath
    _rootpath = session.config.rootpath


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _channel.send({"event": "finished", "exitstatus": int(exitstatus)})
