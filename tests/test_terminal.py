"""The terminal's live lines laid out for the real width (finecode_wm.cli.terminal), no pty."""

from __future__ import annotations

import io
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from finecode_wm.aggregation import BatchProgress
from finecode_wm.cli.terminal import BAR_MAX, BAR_MIN, FIXED, Display, Line, TtyRenderer, layout

pytestmark = pytest.mark.timeout(60)

BAR = re.compile(r"[━╸╺]+")


def render(lines: list[Line], width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=True,
                      color_system="standard")
    display = Display()
    display.lines = tuple(lines)
    rendered = console.render_lines(display, console.options.update(width=width), pad=False)
    return ["".join(segment.text for segment in line) for line in rendered]


def stalled_batch(now: float) -> list[Line]:
    """What a batch shows while `pkg-alpha · sleepy` is silent: the batch line and two rows."""
    return [Line("FineCode: lint, format, stats", 0.7, "70%", now - 7, "3/12", "stalled 6 s",
                 "waiting on pkg-alpha · sleepy · estimate paused", bold=True),
            Line("  pkg-alpha · sleepy", 0.5, "50%", now - 6, mark="stalled 6 s",
                 text="dozing off"),
            Line("  pkg-beta · lint", None, "", now - 2, text="utils.py")]


@pytest.mark.parametrize("width", [80, 110, 200])
def test_every_width_shows_percentage_bar_elapsed_count_and_stall_mark(width: int) -> None:
    shown = render(stalled_batch(time.monotonic()), width)
    assert len(shown) == 3
    for text in shown:
        assert cell_len(text) <= width, (width, text)
        bar = BAR.search(text)
        assert bar is not None and len(bar.group()) >= BAR_MIN, text
    batch, sleepy, beta = shown
    assert re.search(r" 70% 0:00:07 3/12 stalled 6 s", batch), batch
    assert re.search(r" 50% 0:00:06 stalled 6 s dozing off", sleepy), sleepy
    assert re.search(r"[━╸╺]{10,} {6}0:00:02 utils\.py", beta), "a pulse, no percentage"
    assert batch.startswith("FineCode:")
    if width == 200:
        assert batch.startswith("FineCode: lint, format, stats ")
        assert batch.endswith("waiting on pkg-alpha · sleepy · estimate paused")
        assert len(BAR.search(batch).group()) == BAR_MAX  # type: ignore[union-attr]
    else:
        assert batch.endswith("…"), "the narrative takes what is left, cut"
    bars = [text.index(BAR.search(text).group()) for text in shown]  # type: ignore[union-attr]
    assert len(set(bars)) == 1, "bars start in one column"


@pytest.mark.parametrize(("width", "title"), [
    (50, "prepare_env +2"), (80, "prepare_env +2"), (100, "prepare_env, check +1"),
    (140, "FineCode: prepare_env +2"), (200, "FineCode: prepare_env, check, stats")])
def test_a_title_too_long_says_how_many_actions_it_leaves_out(width: int, title: str) -> None:
    """A cut batch title never reads as if its first action were the whole batch."""
    now = time.monotonic()
    (batch,) = render([Line("FineCode: prepare_env, check, stats", 1.0, "100%", now, "9/9",
                            text="9 ok", bold=True)], width)
    assert batch.split(" ━")[0].rstrip() == title, batch


def test_a_hostile_message_stays_on_its_line() -> None:
    now = time.monotonic()
    shown = render([Line("t", 0.5, "50%", now, "1/2", text="a\nb\x1b[31mred\rc\tz" * 20)], 80)
    assert len(shown) == 1 and cell_len(shown[0]) <= 80 and "\x1b" not in shown[0]


widths = st.integers(0, 260)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120)
lines = st.lists(st.builds(Line, texts, st.none(), st.just(""), st.just(0.0),
                           st.from_regex(r"(\d{1,3}/\d{1,3})?", fullmatch=True),
                           st.from_regex(r"(stalled \d{1,4} s)?", fullmatch=True), texts),
                 min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(lines, widths)
def test_layout_keeps_the_must_haves_whatever_the_texts(shown: list[Line], width: int) -> None:
    label, bar = layout(shown, width)
    tails = max(cell_len(f" {line.count}") * bool(line.count) +
                cell_len(f" {line.mark}") * bool(line.mark) for line in shown)
    assert 0 <= label <= max(cell_len(line.label) for line in shown)
    assert 0 <= bar <= BAR_MAX
    if width >= FIXED + BAR_MIN + tails:
        assert bar >= BAR_MIN and label + bar + FIXED + tails <= width
    if width >= 80 and tails <= 22:  # `999/999 stalled 9999 s`
        assert bar >= BAR_MIN
    for text in render(shown, width):
        if width >= FIXED + BAR_MIN + tails:
            assert cell_len(text) <= width, (width, text)


def test_renderer_draws_the_batch_state_and_freezes_at_the_end() -> None:
    """Count, stall mark and narrative come from the batch; the percentage from the values."""
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    progress = BatchProgress([("pkg-a", "lint"), ("pkg-b", "lint")])
    progress.started = time.monotonic() - 8
    a, b = progress.children
    for child in (a, b):
        progress.running(child, progress.started)
        progress.fold(child, {"kind": "begin", "total": 4}, progress.started)
    progress.fold(b, {"kind": "report", "done": 4, "message": "ok"}, progress.started)
    progress.finish(b, "ok")
    renderer = TtyRenderer(console)
    renderer.watch(progress)
    renderer({"kind": "begin", "title": "FineCode: lint", "percentage": 0})
    renderer({"kind": "report", "percentage": 50, "message": "ignored: the batch says it"})
    batch, row = render(list(renderer._display.lines), 80)
    assert re.search(r"FineCode: lint [━╸╺]{10,}  50% 0:00:00 1/2 stalled 8 s waiting on pkg-a ·",
                     batch), batch
    assert "pkg-a · lint" in row and "stalled 8 s" in row
    renderer({"kind": "end", "message": "1 ok, 1 failed"})
    (final,) = render(list(renderer._display.lines), 80)
    assert re.search(r"FineCode: lint [━╸╺]{10,}  50% 0:00:00 1 ok, 1 failed$", final), final
    renderer.close()


@settings(max_examples=50, deadline=None)
@given(words=st.lists(st.text(alphabet="abcdefghij=0123456789", min_size=1, max_size=30),
                      min_size=1, max_size=30),
       width=st.integers(min_value=20, max_value=160))
def test_summary_table_details_wrap_under_their_column(words: list[str], width: int) -> None:
    """A long detail goes on under the detail column, within the width when the column has
    room for it (20 cells), losing no word."""
    from finecode_wm.cli.terminal import DETAIL_MIN, summary_table
    from finecode_wm.diagnostics import RunFindings
    from finecode_wm.results import Entry

    entries = [Entry(project="/w/app", action="stats", status="ok", seconds=0.5,
                     result={"words": " ".join(words)})]
    names, findings = {"/w/app": "app"}, RunFindings(entries)
    wide = summary_table(entries, names, findings).plain.splitlines()[2]
    indent = wide.index("words=")
    lines = summary_table(entries, names, findings, width=width).plain.splitlines()[2:]
    if width - indent >= DETAIL_MIN:
        assert all(len(line) <= width for line in lines), lines
        assert all(line[:indent].strip() == "" for line in lines[1:]), lines
    else:
        assert lines == [wide], "no room for a column: one line, as wide as it is"
    assert " ".join(line[indent:] for line in lines).split() == wide[indent:].split() or \
        "".join(line[indent:] for line in lines).replace(" ", "") == \
        wide[indent:].replace(" ", ""), "every word kept (a long one cut in pieces)"
