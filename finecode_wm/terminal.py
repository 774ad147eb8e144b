"""Rendering the aggregated stream in a terminal (rich): the CLI's view of the same values.

The renderer consumes exactly the LSP begin/report/end values an editor gets, so the terminal and
the editor can never disagree. On a TTY: one live bar with percentage, counts, elapsed time and
the narrative. Elsewhere (CI logs): plain lines, at most one per `PLAIN_INTERVAL` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from finecode_er.progress import Value

__all__ = ["PlainRenderer", "Renderer", "TtyRenderer", "summary_table"]

PLAIN_INTERVAL = 1.0
STATUS_STYLE = {"ok": "green", "failed": "bold red", "cancelled": "yellow"}


class Renderer:
    """Takes progress values; `close()` once the stream has ended."""

    def __call__(self, value: Value) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class TtyRenderer(Renderer):
    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
            TextColumn("{task.fields[percent]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[message]}", markup=False), console=console,
            transient=False)
        self._task: TaskID | None = None

    def __call__(self, value: Value) -> None:
        kind = value["kind"]
        message = value.get("message", "")
        percentage = value.get("percentage")
        if kind == "begin":
            self._progress.start()
            self._task = self._progress.add_task(
                value.get("title", ""), total=100 if percentage is not None else None,
                completed=percentage or 0, message=message,
                percent=f"{percentage}%" if percentage is not None else "")
            return
        if self._task is None:
            return
        fields: dict[str, Any] = {"message": message} if message else {}
        if percentage is not None:
            fields.update(completed=percentage, percent=f"{percentage}%")
        if kind == "end":
            task = self._progress.tasks[0]
            if task.total is None:
                fields["total"] = 1
                fields["completed"] = 1
        self._progress.update(self._task, **fields)
        if kind == "end":
            self._progress.stop()

    def close(self) -> None:
        self._progress.stop()


class PlainRenderer(Renderer):
    """Line-based output for logs: begin, then a line per interval when something changed, end."""

    def __init__(self, console: Console, interval: float = PLAIN_INTERVAL) -> None:
        self._console = console
        self._interval = interval
        self._next = 0.0
        self._pending: str | None = None
        self._start = time.monotonic()

    def _line(self, value: Value) -> str:
        elapsed = time.monotonic() - self._start
        percentage = value.get("percentage")
        head = f"[{elapsed:6.1f}s]" + (f" {percentage:3d}%" if percentage is not None else "")
        return f"{head} {value.get('title') or value.get('message') or ''}".rstrip()

    def __call__(self, value: Value) -> None:
        now = time.monotonic()
        line = self._line(value)
        if value["kind"] == "report" and now < self._next:
            self._pending = line
            return
        if value["kind"] == "end" and self._pending:
            self._console.print(self._pending, highlight=False, markup=False)
        self._pending = None
        self._next = now + self._interval
        self._console.print(line, highlight=False, markup=False)


def summary_table(results: list[dict[str, Any]], names: dict[str, str]) -> Table:
    """project × action × status × time, with the first line of each error."""
    table = Table(title="FineCode results", show_lines=False)
    for column in ("project", "action", "status", "time", "detail"):
        table.add_column(column)
    for entry in results:
        status = entry["status"]
        table.add_row(escape(names.get(entry["project"], entry["project"])),
                      escape(entry["action"]), f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
                      f"{entry.get('seconds', 0):.2f}s", escape(_brief(entry)))
    return table


def _brief(entry: dict[str, Any]) -> str:
    """The first line of an error, or a result's scalar fields (`files=20 count=3`)."""
    if "error" in entry:
        return str(entry["error"]).split("\n", 1)[0][:100]
    result = entry.get("result")
    if isinstance(result, dict):
        scalars = [f"{k}={v}" for k, v in result.items() if isinstance(v, int | float | str)]
        counted = [f"{k}={len(v)}" for k, v in result.items() if isinstance(v, list)]
        return " ".join(scalars + counted)[:100]
    return "" if result is None else str(result)[:100]
