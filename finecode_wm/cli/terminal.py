"""Rendering the aggregated stream in a terminal (rich): the CLI's view of the same stream.

On a TTY: one live line for the batch and below it a line per running child, laid out for the
terminal's real width every time they are drawn (so a resize re-lays them out). The batch line
is `title bar percent elapsed count stall-mark narrative`; a child's is `project · action bar
percent elapsed stall-mark message` (a pulse for a child that declared no total). Percentage,
a bar of at least `BAR_MIN` cells, elapsed time, count and stall mark always fit in 80 columns;
the title and the narrative take what is left, cut with `…` (`layout`). The percentage comes
from the values an editor gets; the count, stall mark, narrative and rows from the batch's own
state (`watch()`), snapshotted on every value, so the terminal says what the editor is told.
Elsewhere (CI logs): plain lines, at most one per `PLAIN_INTERVAL` seconds.
"""

from __future__ import annotations

import datetime
import math
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.segment import Segment
from rich.text import Text

from finecode_er.streams import Value

from ..aggregation import Headline, Row
from ..diagnostics import RunFindings
from ..results import Entry, shorten, shown_status

__all__ = ["Display", "Line", "PlainRenderer", "Renderer", "Source", "TtyRenderer", "layout",
           "summary_table"]

PLAIN_INTERVAL = 1.0
STATUS_STYLE = {"ok": "green", "cached": "green", "failed": "bold red", "cancelled": "yellow"}
DETAIL_MIN = 20  # cells of room below which a detail is not wrapped under its column
BAR_MIN, BAR_MAX = 10, 40  # cells
LABEL_MIN = 16  # cells the title keeps while the narrative wants more room
PERCENT = 4  # `100%`
ELAPSED = 7  # `0:00:07`
FIXED = 1 + PERCENT + 1 + ELAPSED + 1  # the gaps around the bar, the percentage and elapsed


class Source(Protocol):
    """Where the live parts come from (a batch's `BatchProgress`)."""

    def rows(self, now: float) -> list[Row]: ...

    def headline(self, now: float, *, estimate: bool = False) -> Headline: ...


class Renderer:
    """Takes progress values; `close()` once the stream has ended."""

    def __call__(self, value: Value) -> None:
        raise NotImplementedError

    def watch(self, source: Source) -> None:
        """Take the count, stall mark, narrative and running children from `source` (where the
        renderer has room for them)."""
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class Line:
    """One line of the live display, in the parts `layout` fits to a width."""

    label: str  # the title, or `  project · action`
    fraction: float | None  # of the bar; None pulses
    percent: str  # `47%`, or empty
    since: float  # monotonic time its elapsed time counts from
    count: str = ""  # `3/12`: always shown
    mark: str = ""  # `stalled 7 s`: always shown
    text: str = ""  # narrative or message: what is left of the width
    until: float | None = None  # when its elapsed time stopped
    bold: bool = False


def _gap(text: str) -> int:
    """Cells `text` takes with the space before it (nothing when empty)."""
    return cell_len(text) + 1 if text else 0


def _tail(line: Line) -> int:
    """Cells of what must show after the elapsed time: the count and the stall mark."""
    return _gap(line.count) + _gap(line.mark)


def layout(lines: Iterable[Line], width: int) -> tuple[int, int]:
    """(label cells, bar cells) for `width` columns, the same for every line so bars align.

    First what must show: percentage, elapsed time, count, stall mark and the bar, which
    depends on the width alone so it does not jump as texts change: `BAR_MIN` cells up to 80
    columns, growing to `BAR_MAX` at 140. It gives way only when even that does not fit. Then
    the label gets up to a third of what is left (at least `LABEL_MIN`), also regardless of
    the texts, so bars stay in one column from frame to frame; the texts take the rest.
    """
    lines = list(lines)
    labels = max((cell_len(line.label) for line in lines), default=0)
    tails = max((_tail(line) for line in lines), default=0)
    bar = min(BAR_MAX, max(BAR_MIN, (width - 60) // 2))
    room = width - FIXED - bar  # for the label, the tails and the texts
    if room < tails:
        bar = max(0, bar - (tails - room))
        room = width - FIXED - bar
    return max(0, min(labels, max(LABEL_MIN, room // 3), room - tails)), bar


def _printable(text: str) -> str:
    """One line of plain text: a handler's message may hold newlines or escape sequences."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _stalled(quiet: float | None) -> str:
    return "" if quiet is None else f"stalled {math.floor(quiet)} s"


def _elapsed(seconds: float) -> str:
    return str(datetime.timedelta(seconds=max(0, int(seconds))))


def _fitted(title: str, cells: int) -> str:
    """A batch title (`FineCode: lint, format, stats`) in `cells`: as many of its actions as
    fit and how many more (`FineCode: lint +2`), without the `FineCode:` head only when even
    one action does not fit beside it, so a cut title never reads as if its first action were
    the whole batch."""
    head, colon, listed = title.partition(": ")
    names = listed.split(", ") if colon else []
    for headed in (True, False):
        for keep in range(len(names), 0, -1):
            shown = ", ".join(names[:keep]) + (f" +{len(names) - keep}"
                                               if keep < len(names) else "")
            text = f"{head}: {shown}" if headed else shown
            if cell_len(text) <= cells:
                return text
    return title


def _cut(text: str, cells: int, style: str = "") -> Text:
    cut = Text(_printable(text), style=style, no_wrap=True)
    cut.truncate(max(0, cells), overflow="ellipsis")
    return cut


class Display:
    """The live lines, laid out for the width rich renders them at (resizes included)."""

    def __init__(self) -> None:
        self.lines: tuple[Line, ...] = ()  # replaced whole: the refresh thread reads it

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = self.lines
        width = options.max_width
        label, bar = layout(lines, width)
        now = time.monotonic()
        for line in lines:
            shown = _fitted(line.label, label) if line.bold else line.label
            head = _cut(shown, label, "bold" if line.bold else "")
            head.pad_right(label - head.cell_len)
            yield from head.render(console)
            yield Segment(" ")
            if bar:
                cells = ProgressBar(total=None if line.fraction is None else 1.0,
                                    completed=line.fraction or 0.0, width=bar)
                segments = list(console.render(cells, options.update(width=bar)))
                yield from segments
                yield Segment(" " * (bar - Segment.get_line_length(segments)))
            ended = line.until if line.until is not None else now
            rest = Text(f" {line.percent:>{PERCENT}} ")
            rest.append(f"{_elapsed(ended - line.since):>{ELAPSED}}", style="progress.elapsed")
            if line.count:
                rest.append(" ")
                rest.append(line.count, style="bold")
            if line.mark:
                rest.append(" ")
                rest.append(line.mark, style="bold yellow")
            used = label + bar + FIXED + _tail(line)
            if line.text and width - used > 1:
                rest.append(" ")
                rest.append_text(_cut(line.text, width - used - 1))
            yield from rest.render(console)
            yield Segment.line()


class TtyRenderer(Renderer):
    def __init__(self, console: Console) -> None:
        self._display = Display()
        self._live = Live(self._display, console=console, refresh_per_second=10,
                          transient=False)
        self._source: Source | None = None
        self._batch: Line | None = None
        self._determinate = False
        self._started: dict[tuple[str, str], float] = {}

    def watch(self, source: Source) -> None:
        self._source = source

    def __call__(self, value: Value) -> None:
        kind = value["kind"]
        now = time.monotonic()
        percentage = value.get("percentage")
        if kind == "begin":
            self._determinate = percentage is not None
            self._batch = Line(value.get("title", ""), None, "", now, bold=True)
            self._live.start()
        if self._batch is None:
            return
        batch = self._batch
        if percentage is not None:  # also the first one of a stream that began without any
            self._determinate = True
            batch = replace(batch, fraction=percentage / 100, percent=f"{percentage}%")
        if kind == "end":
            self._batch = replace(batch, count="", mark="", text=value.get("message", ""),
                                  until=now,
                                  fraction=1.0 if batch.fraction is None else batch.fraction)
            self._display.lines = (self._batch,)
            self._live.refresh()
            self._live.stop()
            return
        rows: list[Row] = []
        if self._source is not None:
            headline = self._source.headline(now, estimate=self._determinate)
            waiting = f"waiting on {headline.waiting}" if headline.waiting else ""
            batch = replace(batch, count=headline.count, mark=_stalled(headline.quiet),
                            text=" · ".join(part for part in (waiting, headline.text) if part))
            rows = self._source.rows(now)
        elif "message" in value:
            batch = replace(batch, text=value["message"])
        self._batch = batch
        self._display.lines = (batch, *map(self._row, rows))

    @staticmethod
    def _row(row: Row) -> Line:
        since = time.monotonic() - row.ran
        percentage = None if row.fraction is None else math.floor(row.fraction * 100)
        return Line(f"  {row.project} · {row.action}", row.fraction,
                    "" if percentage is None else f"{percentage}%", since,
                    mark=_stalled(row.quiet), text=row.message or "")

    def close(self) -> None:
        self._live.stop()


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
            self._console.print(self._pending, highlight=False, markup=False, soft_wrap=True)
        self._pending = None
        self._next = now + self._interval
        self._console.print(line, highlight=False, markup=False, soft_wrap=True)


def summary_table(results: list[Entry], names: dict[str, str], findings: RunFindings, *,
                  width: int | None = None) -> Text:
    """project × action × status × time, with the first line of each error; a result reused
    from the result cache shows `cached` as its status.

    Aligned columns in one `Text`: rich's `Table` measures every cell, about a millisecond a
    row, which a workspace of hundreds of children would wait for after every run. A detail
    longer than the room `width` leaves it goes on under its own column.
    """
    header = ("project", "action", "status", "time", "detail")
    rows = [(_printable(names.get(entry["project"], entry["project"])),
             _printable(entry["action"]),
             shown_status(entry),
             f"{entry.get('seconds', 0):.2f}s", _printable(_brief(entry, findings.count(index))))
            for index, entry in enumerate(results)]
    widths = [max(map(cell_len, column)) for column in zip(header, *rows, strict=True)]
    indent = sum(widths[:-1]) + 2 * (len(widths) - 1)
    room = width - indent if width is not None and width - indent >= DETAIL_MIN else None
    table = Text("FineCode results", style="italic")
    for number, row in enumerate([header, *rows]):
        table.append("\n")
        for column, (cell, cell_width) in enumerate(zip(row, widths, strict=True)):
            style = "bold" if number == 0 else STATUS_STYLE.get(cell, "") if column == 2 else ""
            if column < len(row) - 1:
                table.append(cell + " " * (cell_width - cell_len(cell) + 2), style)
            elif room is not None and cell_len(cell) > room:
                table.append(("\n" + " " * indent).join(textwrap.wrap(cell, room)), style)
            else:
                table.append(cell, style)
    return table


def _brief(entry: Entry, found: int | None) -> str:
    """The first line of an error, cut at a word; or a result's scalar fields, the sizes of its
    lists and tables, and its findings as the listing counts them
    (`files=20 count=3 findings=3`; `found`, None when it reported no findings list)."""
    if "error" in entry:
        return shorten(str(entry["error"]), 100)
    result = entry.get("result")
    parts = []
    if isinstance(result, dict):
        parts += [f"{k}={v}" for k, v in result.items() if isinstance(v, int | float | str)]
        parts += [f"{k}={len(v)}" for k, v in result.items()
                  if isinstance(v, list | dict) and k != "diagnostics"]
    elif result is not None:
        parts.append(str(result))
    if found is not None:
        parts.append(f"findings={found}")
    return shorten(" ".join(parts), 100)
