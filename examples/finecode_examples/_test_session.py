"""What one pytest run reported, folded from the events of the plugin in its child (pure: no
I/O, no clock), and what it means for the action: findings, counts, progress words, and
whether pytest ran at all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finecode_examples._files import relpath
from finecode_examples._subprocess import tail

__all__ = ["OUTCOMES", "Session"]

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
