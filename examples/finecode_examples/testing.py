"""pytest-backed ``test`` and ``discover_tests`` handlers.

pytest runs in the project's own environment (the interpreter running this handler, which is the
project's `python`), from the project root, in a process group of its own. A small plugin in
that child (`pytest_plugin/finecode_pytest_events.py`) streams what happens on a pipe of its
own — never by reading pytest's terminal output, which the project's options and plugins shape:
collection first (no total yet: the bar waits, the narrative says so), then the number of
collected tests as a late total and one advance per finished test. Failures, errors and files
that cannot be collected become findings at their lines; the terminal output is kept only to
explain a pytest that did not run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from finecode_examples._files import relpath
from finecode_examples._subprocess import started, tail

if TYPE_CHECKING:
    from finecode_er.api import RunActionContext

__all__ = ["Session", "discover_tests", "test"]

PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"
PLUGIN = "finecode_pytest_events"
EVENTS_ENV = "FINECODE_PYTEST_EVENTS_FD"
CONFIG_KEYS = frozenset({"args", "env"})
EVENT_LINE_LIMIT = 64 * 1024 * 1024  # the `collected` event lists every test id on one line
READ_CHUNK = 256 * 1024
READS_PER_WAKE = 64
COALESCE = 0.02  # seconds between reads of the event pipe: one wake-up per batch of events
DRAIN_GRACE = 0.5  # after pytest exits, how long a process it left may keep the pipe open
OUTPUT_TAIL_BYTES = 8000
MESSAGE_CHARS = 300
# pytest's exit codes that mean it ran: tests passed, tests failed, no tests collected.
RAN = frozenset({0, 1, 5})
INTERRUPTED = 2
USAGE_ERROR = 4
EXIT_MEANINGS = {INTERRUPTED: ", interrupted", 3: ", an internal error",
                 USAGE_ERROR: ", a usage error: check the action's `args`"}
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
CODES = {"failed": "test-failed", "error": "test-error"}

Event = dict[str, Any]


@dataclass
class Session:
    """What one pytest run reported, folded event by event (pure: no I/O, no clock).

    Events come from a child that runs the project's code, so each one is checked: a malformed
    event is counted and skipped, never trusted.
    """

    root: Path
    ids: list[str] | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    collection_errors: int = 0
    exitstatus: int | None = None
    last: str = ""
    malformed: int = 0

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    def fold(self, event: Any) -> str | None:
        """Take one event; return its kind when it was used, None when it was malformed."""
        kind = event.get("event") if isinstance(event, dict) else None
        used = {"collected": self._collected, "test": self._test,
                "collect_error": self._collect_error, "finished": self._finished}.get(str(kind))
        if used is None or not used(event):
            self.malformed += 1
            return None
        return str(kind)

    def _collected(self, event: Event) -> bool:
        ids = event.get("ids")
        if self.ids is not None or not isinstance(ids, list) or \
                not all(isinstance(i, str) for i in ids):
            return False
        self.ids = ids
        return True

    def _test(self, event: Event) -> bool:
        outcome, test_id = event.get("outcome"), event.get("id")
        if outcome not in OUTCOMES or not isinstance(test_id, str):
            return False
        self.outcomes[outcome] += 1
        self.last = test_id
        if outcome in CODES:
            name = test_id.rpartition("::")[2] or test_id
            self._finding(event, CODES[outcome],
                          f"{name} {'failed' if outcome == 'failed' else 'errored'}")
        return True

    def _collect_error(self, event: Event) -> bool:
        if not isinstance(event.get("path"), str):
            return False
        self.collection_errors += 1
        self._finding(event, "collection-error", "cannot collect tests")
        return True

    def _finished(self, event: Event) -> bool:
        status = event.get("exitstatus")
        if self.exitstatus is not None or isinstance(status, bool) or not isinstance(status, int):
            return False
        self.exitstatus = status
        return True

    def _finding(self, event: Event, code: str, headline: str) -> None:
        path, line, message = event.get("path"), event.get("line"), event.get("message")
        detail = message[:MESSAGE_CHARS] if isinstance(message, str) and message else ""
        self.diagnostics.append({
            "path": relpath(Path(str(path)), self.root),
            "line": line if isinstance(line, int) and not isinstance(line, bool) and line > 0
            else 1,
            "column": 1, "code": code, "severity": "error",
            "message": f"{headline}: {detail}" if detail else headline})

    @property
    def total(self) -> int:
        return len(self.ids) if self.ids is not None else 0

    def progress_message(self) -> str:
        failed = self.outcomes["failed"] + self.outcomes["error"]
        parts = [f"{self.done}/{self.total} tests"]
        if failed:
            parts.append(f"{failed} failed")
        if self.last:
            parts.append(self.last.rpartition("/")[2])
        return " · ".join(parts)

    def check(self, returncode: int, output: str) -> None:
        """Raise when pytest did not run to the end: that is a failure of the action, while
        failing tests and files that cannot be collected are findings."""
        status = self.exitstatus
        if status in RAN or (status == INTERRUPTED and self.collection_errors):
            return
        if status is None and self.collection_errors and self.ids is None:
            return  # a conftest that does not import stops pytest before collection
        if status is not None:
            why = f"exit code {status}{EXIT_MEANINGS.get(status, '')}"
            raise RuntimeError(f"pytest did not finish its session ({why}): {tail(output)}")
        # No session end: pytest's own usage error, or a process that died (a signal, a test
        # calling os._exit), whose exit code means nothing to pytest.
        usage = EXIT_MEANINGS[USAGE_ERROR] if returncode == USAGE_ERROR else ""
        why = (f"killed by signal {-returncode}" if returncode < 0 else
               f"exit code {returncode}{usage}")
        when = (f"after {self.done}/{self.total} tests (last: {self.last or 'none'})"
                if self.ids is not None else "before collecting tests")
        raise RuntimeError(f"pytest stopped {when} ({why}): {tail(output)}")

    def summary(self, seconds: float) -> str:
        """pytest's own closing words: `3 passed, 1 failed, 1 collection error in 0.52 s`."""
        counts = [(self.outcomes[o], o) for o in OUTCOMES]
        counts.append((self.collection_errors, "collection error"))
        words = [f"{n} {word}{'s' if n > 1 and word.endswith('error') else ''}"
                 for n, word in counts if n]
        return f"{', '.join(words) or 'no tests'} in {seconds:.2f} s"


async def test(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Run the project's tests; one progress step per finished test, failures as findings."""
    session, seconds = await _session(ctx, "Testing", collect_only=False)
    counts = {("errors" if o == "error" else o): session.outcomes[o] for o in OUTCOMES}
    return {"summary": session.summary(seconds), "collected": session.total, **counts,
            "not_run": max(session.total - session.done, 0),
            "collection_errors": session.collection_errors, "duration": round(seconds, 3),
            "exit_code": session.exitstatus, "diagnostics": session.diagnostics}


async def discover_tests(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """The ids of the project's tests (pytest's node ids), and the files it cannot collect."""
    session, _seconds = await _session(ctx, "Discovering tests", collect_only=True)
    return {"summary": f"{session.total} tests", "count": session.total,
            "collection_errors": session.collection_errors, "tests": session.ids or [],
            "diagnostics": session.diagnostics}


async def _session(ctx: RunActionContext, title: str, *,
                   collect_only: bool) -> tuple[Session, float]:
    """One pytest run with progress: narrated while it collects, then (running tests) the
    number collected as a late total and one advance per finished test."""
    options = Options.parse(ctx.config)
    session = Session(ctx.project_root)
    begun = time.monotonic()
    async with ctx.progress(title, cancellable=True) as progress:
        await progress.report(message="collecting tests")

        async def on_events(events: list[Any]) -> None:
            finished = session.done
            for event in events:
                kind = session.fold(event)
                if kind == "collected":
                    if not collect_only:
                        await progress.set_total(session.total)
                    await progress.report(message=f"collected {session.total} tests")
                elif kind == "collect_error":
                    await progress.report(
                        message=f"cannot collect {session.diagnostics[-1]['path']}")
            if session.done > finished:
                await progress.advance(session.done - finished,
                                       message=session.progress_message())

        returncode, output = await run_pytest(ctx.project_root,
                                              options.command(collect_only=collect_only),
                                              on_events, dict(options.env))
    seconds = time.monotonic() - begun
    session.check(returncode, output)
    return session, seconds


@dataclass(frozen=True)
class Options:
    """The handlers' config, checked: pytest's `args` and extra `env` variables."""

    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, config: Mapping[str, Any] | None) -> Options:
        config = config or {}
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
        args = config.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"config 'args' must be a list of strings, got {args!r}")
        env = config.get("env", {})
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and k and "=" not in k and isinstance(v, str)
                for k, v in env.items()):
            raise ValueError(f"config 'env' must be a table of strings, got {env!r}")
        return cls(tuple(args), tuple(env.items()))

    def command(self, *, collect_only: bool) -> list[str]:
        """pytest's arguments: quiet output (only kept to explain a crash), every collectable
        file run even when another one cannot be collected, then the action's own `args`."""
        return ["-q", "--continue-on-collection-errors",
                *(["--collect-only"] if collect_only else []), *self.args]


async def run_pytest(root: Path, args: Sequence[str],
                     on_events: Callable[[list[Any]], Awaitable[None]],
                     extra_env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run pytest with the events plugin; call `on_events` with each batch of events as they
    arrive (a line that is not JSON is passed as None).

    Returns pytest's exit code and the end of its terminal output. Cancelling kills pytest and
    everything it started (its process group) before this returns.
    """
    read_fd, write_fd = os.pipe()
    env = {**os.environ, **(extra_env or {})}
    env[EVENTS_ENV] = str(write_fd)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "pytest", "-p", PLUGIN, *args]
    with tempfile.TemporaryFile() as output:
        try:
            async with started(command, cwd=root, env=env, stdout=output,
                               stderr=asyncio.subprocess.STDOUT, pass_fds=(write_fd,)) as proc:
                os.close(write_fd)
                write_fd = -1
                await _stream_events(read_fd, proc, on_events)
                returncode = await proc.wait()
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        return returncode, _read_tail(output)


async def _stream_events(fd: int, proc: asyncio.subprocess.Process,
                         on_events: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Read newline-delimited JSON events from `fd` until the pipe closes.

    Events are taken in batches: once the pipe has data the handler waits `COALESCE` seconds
    and reads everything there, so a suite of fast tests wakes it a few dozen times a second
    rather than once per test (the reports it sends are paced at 0.1 s anyway). The pipe closes
    when pytest exits, unless a process it started kept a copy: once pytest has exited, such a
    straggler gets `DRAIN_GRACE` seconds, then reading stops here.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    stop = False

    def give_up() -> None:
        nonlocal stop
        stop = True
        readable.set()

    exited = loop.create_task(proc.wait())
    exited.add_done_callback(lambda _: loop.call_later(DRAIN_GRACE, give_up))
    lines = _Lines(EVENT_LINE_LIMIT)
    try:
        while True:
            loop.add_reader(fd, readable.set)
            try:
                await readable.wait()
            finally:
                loop.remove_reader(fd)
            readable.clear()
            await asyncio.sleep(COALESCE)
            data, eof = _available(fd)
            await on_events([_parse(line) for line in lines.feed(data)])
            if eof or stop:
                return
    finally:
        if not exited.done():
            exited.cancel()


def _parse(line: bytes) -> Any:
    """One event, or None for a line that is not JSON (or nests deeper than Python can)."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _available(fd: int) -> tuple[bytes, bool]:
    """What the pipe holds now (bounded, so a flood cannot hold the loop), and whether it
    ended."""
    chunks: list[bytes] = []
    for _ in range(READS_PER_WAKE):
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            break
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


class _Lines:
    """Splits a byte stream into lines; a line longer than `limit` is dropped whole (the
    events after it still count)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending = bytearray()
        self._overlong = False

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        *lines, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        if self._overlong and lines:
            lines.pop(0)  # the end of the line that was dropped
            self._overlong = False
        if len(self._pending) > self._limit:
            self._pending.clear()
            self._overlong = True
        return [bytes(line) for line in lines if len(line) <= self._limit]


def _read_tail(output: IO[bytes]) -> str:
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(size - OUTPUT_TAIL_BYTES, 0))
    return output.read().decode(errors="replace")


