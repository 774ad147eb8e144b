"""Rendering the aggregated stream in a terminal (rich): the CLI's view of the same values.

The renderer consumes exactly the LSP begin/report/end values an editor gets, so the terminal and
the editor can never disagree. On a TTY: one live bar with percentage, elapsed time and the
narrative (stall notice and estimate of the time left included), and below it a row per running
child (project · action · its own bar, or a pulse when it declared nothing · its message), a
stalled one marked. The rows are a snapshot the renderer asks the batch for (`watch()`); state
stays in `BatchProgress`. Elsewhere (CI logs): plain lines, at most one per `PLAIN_INTERVAL`
seconds.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from finecode_er.progress import Value

from .progress import Row

__all__ = ["PlainRenderer", "Renderer", "Rows", "TtyRenderer", "summary_table"]

PLAIN_INTERVAL = 1.0
STATUS_STYLE = {"ok": "green", "failed": "bold red", "cancelled": "yellow"}


class Rows(Protocol):
    """Where the running children come from (a batch's `BatchProgress`)."""

    def rows(self, now: float) -> list[Row]: ...


class Renderer:
    """Takes progress values; `close()` once the stream has ended."""

    def __call__(self, value: Value) -> None:
        raise NotImplementedError

    def watch(self, source: Rows) -> None:
        """Show the running children of `source` too (where the renderer has room for them)."""
        return None

    def close(self) -> None:
        return None


class TtyRenderer(Renderer):
    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
            TextColumn("{task.fields[percent]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[mark]}", style="bold yellow", markup=False),
            TextColumn("{task.fields[message]}", markup=False), console=console,
            transient=False)
        self._task: TaskID | None = None
        self._source: Rows | None = None
        self._rows: dict[tuple[str, str], TaskID] = {}

    def watch(self, source: Rows) -> None:
        self._source = source

    def __call__(self, value: Value) -> None:
        kind = value["kind"]
        message = value.get("message", "")
        percentage = value.get("percentage")
        if kind == "begin":
            self._progress.start()
            self._task = self._progress.add_task(
                value.get("title", ""), total=100 if percentage is not None else None,
                completed=percentage or 0, message=message, mark="",
                percent=f"{percentage}%" if percentage is not None else "")
            self._show_rows([])
            return
        if self._task is None:
            return
        fields: dict[str, Any] = {"message": message} if message else {}
        if percentage is not None:  # also the first one of a stream that began without any
            fields.update(total=100, completed=percentage, percent=f"{percentage}%")
        if kind == "end":
            task = self._progress.tasks[0]
            if task.total is None:
                fields["total"] = 1
                fields["completed"] = 1
        self._progress.update(self._task, **fields)
        if kind == "end":
            self._show_rows([])
            self._progress.stop()
        elif self._source is not None:
            self._show_rows(self._source.rows(time.monotonic()))

    def _show_rows(self, rows: list[Row]) -> None:
        """One task per running child: added when it starts running, removed when it ends."""
        running = {(row.project, row.action): row for row in rows}
        for key in [k for k in self._rows if k not in running]:
            self._progress.remove_task(self._rows.pop(key))
        for key, row in running.items():
            percentage = None if row.fraction is None else math.floor(row.fraction * 100)
            fields: dict[str, Any] = {
                "message": row.message or "", "percent": "" if percentage is None else
                f"{percentage}%", "mark": "" if row.quiet is None else
                f"stalled {math.floor(row.quiet)} s"}
            task = self._rows.get(key)
            if task is None:
                self._rows[key] = self._progress.add_task(
                    f"  {row.project} · {row.action}", completed=percentage or 0,
                    total=None if percentage is None else 100, **fields)
            elif percentage is not None:
                self._progress.update(task, total=100, completed=percentage, **fields)
            else:
                self._progress.update(task, **fields)

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
