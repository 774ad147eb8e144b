"""The WM's aggregation of child executions into one editor stream (pure: no I/O, no clock).

Each child execution (project × action) reports on its own internal token; `BatchProgress`
checks every child value (a misbehaving child cannot break the editor's rules: bad values are
dropped and described), folds the good ones into the shared `Work` tree, and words the narrative
(`3/12 · lint · pkg-a: utils.py`) and the outcome (`11 ok, 1 failed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from finecode_er.progress import Work

__all__ = ["BatchProgress", "Child"]

MAX_MESSAGE = 200


def _number(value: Any) -> float | None:
    """A finite, non-negative number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


@dataclass(eq=False)
class Child:
    """One child execution as the aggregation sees it."""

    project: str
    action: str
    work: Work
    state: str = "waiting"  # of its stream: waiting → active → ended
    message: str | None = None
    status: str | None = None  # ok | failed | cancelled, once it has finished
    dropped: list[str] = field(default_factory=list)


class BatchProgress:
    """Folds the children's streams; decides what is measurable and what the narrative says."""

    def __init__(self, children: list[tuple[str, str]]) -> None:
        self.root = Work(composite=True, expected=len(children))
        self.children = [Child(p, a, self.root.add()) for p, a in children]
        self.current: Child | None = None
        self.finished = 0
        self.dropped = 0

    def measurable(self) -> bool:
        """Rule 4: two or more children are measured by their count; one by its declared total."""
        return self.root.units() is not None

    # -- child values -----------------------------------------------------------------------

    def fold(self, child: Child, value: Any) -> str | None:
        """Apply one child `$/progress` value; returns why (part of) it was dropped, if it was."""
        problem = self._fold(child, value)
        if problem is not None:
            self.dropped += 1
        return problem

    def _fold(self, child: Child, value: Any) -> str | None:
        if not isinstance(value, dict) or value.get("kind") not in ("begin", "report", "end"):
            return f"not a progress value: {str(value)[:80]}"
        kind = value["kind"]
        if child.status is not None:
            return f"{kind} after the execution finished"
        if kind == "begin":
            if child.state != "waiting":
                return "second begin"
            child.state = "active"
        elif child.state != "active":
            return f"{kind} before begin" if child.state == "waiting" else f"{kind} after end"
        if kind == "end":
            child.state = "ended"
            return None
        problems = []
        message = value.get("message")
        if isinstance(message, str):
            child.message = message[:MAX_MESSAGE]
            self.current = child
        elif message is not None:
            problems.append("message is not a string")
        problems += self._fold_units(child.work, value)
        return "; ".join(problems) or None

    @staticmethod
    def _fold_units(work: Work, value: dict[str, Any]) -> list[str]:
        problems = []
        if "total" in value:
            total = _number(value["total"])
            if total is None:
                problems.append(f"bad total {value['total']!r}")
            else:
                work.total = total
        if "done" in value:
            done = _number(value["done"])
            if done is None:
                problems.append(f"bad done {value['done']!r}")
            elif done < work.done:
                problems.append(f"done went back ({work.done:g} → {done:g})")
            else:
                work.done = done if work.total is None else min(done, work.total)
        if "percentage" in value and work.total is None:
            percentage = _number(value["percentage"])
            if percentage is None or percentage > 100:
                problems.append(f"bad percentage {value['percentage']!r}")
            elif work.hint is not None and percentage / 100 < work.hint:
                problems.append("percentage went back")
            else:
                work.hint = percentage / 100
        return problems

    def finish(self, child: Child, status: str) -> None:
        """The child's execution is over (its answer arrived, it failed, or was cancelled)."""
        if child.status is not None:
            return
        child.status = status
        child.work.finish(abandoned=status == "cancelled")
        self.finished += 1

    # -- words ------------------------------------------------------------------------------

    def narrative(self) -> str:
        total = len(self.children)
        child = self.current
        if child is None or child.status is not None:
            child = next((c for c in self.children if c.state == "active" and c.status is None),
                         None)
        head = f"{self.finished}/{total}"
        if child is None:
            return head
        text = f"{head} · {child.action} · {child.project}"
        return f"{text}: {child.message}" if child.message else text

    def outcome(self, *, cancelled: bool = False) -> str:
        counts = {s: sum(c.status == s for c in self.children) for s in
                  ("ok", "failed", "cancelled")}
        words = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to run"
        return f"cancelled: {words}" if cancelled else words
