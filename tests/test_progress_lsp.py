"""End to end through the real WM: weighting, the stall notice, the estimate, history."""

from __future__ import annotations

import bisect
import re
from collections.abc import AsyncIterator

import pytest
import pytest_lsp

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
