"""End to end through the real WM: weighting, the stall notice, the estimate, history."""

from __future__ import annotations

import bisect
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp

from finecode_wm.aggregation import HISTORY_MARGIN

from .lsp_client import CONFIG, RecordingClient, init_params
from .rules import check_stream
from .test_lsp import ALPHA, BETA, run_batch

pytestmark = pytest.mark.timeout(60)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: RecordingClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(init_params())
    yield
    await lsp_client.shutdown_session()


def shown_after(client: RecordingClient, token: str, prefix: str) -> list[int]:
    """Percentages of the values whose message starts with `prefix`."""
    return [v["percentage"] for v in client.values[token]
            if v.get("message", "").startswith(prefix) and "percentage" in v]


async def test_zero_total_beside_untotalled_children_rises(client: RecordingClient) -> None:
    """alpha/sized declares 0 units: done at once, it must not pin the others at 0%."""
    result = await run_batch(client, actions=["sized", "untotalled"], projects=[ALPHA, BETA],
                             options={"concurrent": False}, workDoneToken="z")
    assert result["summary"]["ok"] == 3
    shown = check_stream(client.values["z"])
    assert shown[-1] == 100
    two_done = shown_after(client, "z", "2/3")
    assert two_done and min(two_done) >= 30, client.values["z"]  # `untotalled` is a third


async def test_actions_with_very_different_units_weigh_by_children(
        client: RecordingClient) -> None:
    """count (5 units) beside huge (1,000,000 units): finishing count is half the batch."""
    await run_batch(client, actions=["count", "huge"], projects=[ALPHA], workDoneToken="u")
    check_stream(client.values["u"])
    one_done = shown_after(client, "u", "1/2")
    assert one_done and one_done[0] >= 50, client.values["u"]


async def test_stall_notice_names_the_child_counts_up_and_estimate_follows(
        client: RecordingClient) -> None:
    await run_batch(client, actions=["sleepy", "count"], projects=[ALPHA], workDoneToken="s")
    values = client.values["s"]
    check_stream(values)
    counts = [int(m.group(1)) for v in values
              if (m := re.search(r"waiting on alpha · sleepy \((\d+) s without progress\)",
                                 v.get("message", "")))]
    assert counts and counts[0] == 5 and counts[-1] >= 6, [v.get("message") for v in values]
    assert counts == sorted(counts)
    estimated = [v for v in values if re.search(r"~\d+ s left", v.get("message", ""))]
    assert estimated and all("percentage" in v for v in estimated)


async def test_second_run_tracks_time_from_history(client: RecordingClient) -> None:
    """alpha/paced: 40 units in ~0.4 s; beta/paced: 10 units in ~2 s, one after the other.

    By units the bar is at ~88% halfway through; weighed by the first run's times it is ~50%.
    """
    await run_batch(client, actions=["quiet"])  # both runners warm: only handler time counts
    deviations = []
    for token in ("h1", "h2"):
        await run_batch(client, actions=["paced"], options={"concurrent": False},
                        workDoneToken=token)
        check_stream(client.values[token])
        stamps, values = client.stamps[token], client.values[token]
        middle = (stamps[0] + stamps[-1]) / 2
        at_middle = values[bisect.bisect_right(stamps, middle) - 1]
        deviations.append(abs(at_middle["percentage"] - 50))
    assert deviations[0] > 15, f"without history the bar follows units: {deviations}"
    assert deviations[1] <= 15, f"with history the bar follows time: {deviations}"


def files_project(root: Path, files: int, delay: float) -> Path:
    """A project whose `files` action declares `files` units and takes `delay` s for each."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        "[tool.finecode.actions.files]\nhandlers = [{ source = \"probe_handlers:units\", "
        f"config = {{ total = {files}, steps = {files}, delay = {delay} }} }}]\n")
    return root


@pytest_lsp.fixture(config=CONFIG)
async def four(lsp_client: RecordingClient, tmp_path: Path) -> AsyncIterator[None]:
    """a, b, c: 4 files at 0.1 s; d: 32 files at 0.01 s. Four at once."""
    for name in "abc":
        files_project(tmp_path / "ws" / name, 4, 0.1)
    lsp_client.d = files_project(tmp_path / "ws" / "d", 32, 0.01)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(init_params(root=tmp_path / "ws", warm=False,
                                                    maxParallel=4))
    yield
    await lsp_client.shutdown_session()


async def test_a_changed_config_drops_history_and_the_bar_follows_the_files_done(
        four: RecordingClient) -> None:
    """The issue's case: d's handler got slower per file (0.01 → 0.08 s) after the first run
    was timed. By that old timing a, b, c done would be ~80% of the batch while d has done a
    few of its 32 files. Its history must not weigh the second run: with a, b, c done and d at
    step n, the bar shows (12 + n + 1) / 44 of the files, within the margin."""
    await run_batch(four, actions=["files"], workDoneToken="before")
    check_stream(four.values["before"])
    toml = four.d / "pyproject.toml"  # type: ignore[attr-defined]
    toml.write_text(toml.read_text().replace("delay = 0.01", "delay = 0.08"))
    await run_batch(four, actions=["files"], workDoneToken="after")
    values = four.values["after"]
    check_stream(values)
    points = [(v["percentage"], int(m.group(1))) for v in values
              if "percentage" in v and (m := re.match(r"3/4 · files · d: step (\d+)",
                                                      v.get("message", "")))]
    assert len(points) >= 5, values
    for shown, step in points:
        files = 100 * (12 + step + 1) / 44
        assert abs(shown - files) <= 100 * HISTORY_MARGIN, (shown, step, points)
        assert abs(shown - files) <= 2, ("d's timing no longer matches: files alone", points)
