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
- `{"event": "test", "id", "outcome", "path", "line", "message"?}`: one finished test (sent
  once its teardown is over); outcome is passed, failed, error (setup or teardown), skipped,
  xfailed or xpassed; the line is where it failed in its own file, else its definition.
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
# One encoder for the whole run (`json.dumps` with options builds a new one per call); ASCII
# only, and anything JSON cannot carry (a path, say) as its str().
_encode = json.JSONEncoder(default=str).encode


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
            self._out.write(_encode(event) + "\n")
        except (OSError, ValueError):
            self._out = None


_channel = _Channel()
_project = Path.cwd()  # the handler starts pytest in the project root
_rootpath = _project  # pytest's rootdir, which test locations are relative to
_failures: dict[str, tuple[int, str]] = {}  # nodeid -> (line in the test file, message)
_collect_origins: dict[str, tuple[str, int, str]] = {}  # nodeid -> (path, line, message)
_outcomes: dict[str, str] = {}
_notes: dict[str, str] = {}  # nodeid -> why it was skipped, or the end of a failure's report
_paths: dict[str, str] = {}  # location relative to the rootdir -> absolute path


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
    """The exception behind a failure, while it still has its traceback. pytest calls this
    only for failures, so a passing test costs nothing here."""
    excinfo = call.excinfo
    if excinfo is None:
        return
    exc = excinfo.value
    if isinstance(report, pytest.CollectReport):
        fallback = str(getattr(node, "path", _project))
        path, line = _origin(exc) or (fallback, 1)
        cause = _innermost(exc)
        message = f"{type(cause).__name__}: {cause}" if cause is not exc else str(exc)
        _collect_origins[report.nodeid] = (path, line, _short(message))
    elif report.nodeid not in _failures:
        # The line in the test's own file where it failed (an assert, or the call into the
        # code that raised); elsewhere (a conftest fixture) is named in the message.
        test_file = str(getattr(node, "path", ""))
        lines = [line for filename, line in _frames(exc) if filename == test_file]
        message = excinfo.exconly(tryshort=True)
        if not lines:
            origin = _origin(exc)
            if origin is not None:
                message += f" (at {os.path.relpath(origin[0], _project)}:{origin[1]})"
        _failures[report.nodeid] = (lines[-1] if lines else 0, _short(message))


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


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A phase of a test ended: remember how the test is going (passing phases cost a check)."""
    nodeid = report.nodeid
    if report.passed:
        if report.when == "call" and nodeid not in _outcomes:
            _outcomes[nodeid] = "xpassed" if hasattr(report, "wasxfail") else "passed"
        return
    outcome = _outcomes.get(nodeid)
    if report.failed:
        if outcome not in ("failed", "error"):
            _outcomes[nodeid] = "failed" if report.when == "call" else "error"
            text = report.longreprtext.strip()  # for a failure without an exception
            _notes[nodeid] = _short(text.splitlines()[-1] if text else "failed")
    elif outcome is None:
        _outcomes[nodeid] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        if isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
            _notes[nodeid] = _short(str(report.longrepr[2]))


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """The test is over (its teardown too): one event for it."""
    outcome = _outcomes.pop(nodeid, "passed")
    relative, def_line, _domain = location
    line = def_line + 1 if def_line is not None else 1
    message = _notes.pop(nodeid, "")
    if outcome in ("failed", "error"):
        failed_at, detail = _failures.pop(nodeid, (0, ""))
        line, message = failed_at or line, detail or message
    path = _paths.get(relative)
    if path is None:
        path = _paths[relative] = str(_rootpath / relative)
    event = {"event": "test", "id": nodeid, "outcome": outcome, "path": path, "line": line}
    if message:
        event["message"] = message
    _channel.send(event)


def pytest_sessionstart(session: pytest.Session) -> None:
    global _rootpath
    _rootpath = session.config.rootpath


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _channel.send({"event": "finished", "exitstatus": int(exitstatus)})
