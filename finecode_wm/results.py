"""The shape of a run's answer, typed once: result entries, the summary, config errors.

A fixed interface (editors, agents, scripts and delegating handlers read it):
`{results: [{project, action, status, seconds, result? | error?, errorData?, cached?}],
  summary: {ok, failed, cancelled}, config_errors?: [{project, error}]}`.
Every front end and the batch build and read these types; none indexes an untyped dict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal, NotRequired, TypedDict

__all__ = ["STATUSES", "ConfigError", "Entry", "RunResult", "Status", "Summary", "counts_text",
           "import_failure", "shorten", "shown_status", "summarize"]

Status = Literal["ok", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("ok", "failed", "cancelled")


class Entry(TypedDict):
    """One child execution's outcome: `result` when ok, else `error` (and the runner's
    `errorData`, when it sent some)."""

    project: str  # the project's absolute path
    action: str
    status: Status
    seconds: float
    result: NotRequired[Any]
    error: NotRequired[str]
    errorData: NotRequired[Any]
    cached: NotRequired[bool]  # true: reused from the result cache (status ok)


class Summary(TypedDict):
    ok: int
    failed: int
    cancelled: int


class ConfigError(TypedDict):
    """A selected project that could not run as configured (never an entry)."""

    project: str
    error: str


class RunResult(TypedDict):
    results: list[Entry]
    summary: Summary
    config_errors: NotRequired[list[ConfigError]]


def summarize(entries: list[Entry]) -> Summary:
    """How many entries ended in each status."""
    return Summary(ok=sum(e["status"] == "ok" for e in entries),
                   failed=sum(e["status"] == "failed" for e in entries),
                   cancelled=sum(e["status"] == "cancelled" for e in entries))


def shown_status(entry: Entry) -> str:
    """An entry's status as a person reads it: `cached` for a result reused from the cache."""
    return "cached" if entry.get("cached") else entry["status"]


def counts_text(statuses: Iterable[str], cached: int) -> str:
    """`3 ok (2 cached), 1 failed`: how many ended in each status, in the order of `STATUSES`
    (empty when none); said the same way by the progress end and the MCP summary."""
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s}" + (f" ({cached} cached)" if s == "ok" and cached else "")
                     for s in STATUSES if counts[s])


def import_failure(entry: Entry) -> bool:
    """A child that failed because its handler could not be imported: a config problem."""
    data = entry.get("errorData")
    return entry["status"] == "failed" and isinstance(data, dict) and data.get("kind") == "import"


def shorten(text: str, limit: int) -> str:
    """The first line of `text`, at most `limit` characters, cut at a word boundary with `…`
    (a single word longer than the limit is cut inside)."""
    line = text.strip().split("\n", 1)[0].rstrip()
    if len(line) <= limit:
        return line
    cut = line[:limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
