"""`PacedStream` (finecode_er.pacing): leading edge, coalescing, and no-change flushes.

A fake clock decides what is due; a timer that would fire is fired by hand (`flush()`), so
nothing here depends on how long anything takes.
"""

from __future__ import annotations

from typing import Any

import pytest

from finecode_er.pacing import RECHECK, PacedStream
from finecode_er.streams import FractionStream

pytestmark = pytest.mark.timeout(30)

INTERVAL = 0.1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Measure:
    def __init__(self) -> None:
        self.value: float | None = 0.0

    def fraction(self) -> float | None:
        return self.value


class Narrated(PacedStream):
    text = "a"

    def message(self) -> str | None:
        return self.text


def make(**kwargs: Any) -> tuple[Narrated, Measure, Clock, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    measure, clock = Measure(), Clock()
    stream = Narrated(sent.append, measure, interval=INTERVAL, clock=clock, **kwargs)
    stream.begin("t", cancellable=False, determinate=True)
    return stream, measure, clock, sent


async def test_a_change_after_a_quiet_interval_goes_out_at_once() -> None:
    stream, measure, clock, sent = make()
    clock.now += INTERVAL
    measure.value = 0.3
    assert stream.touch(), "quiet for an interval: sent now, not at the next timer"
    assert [v.get("percentage") for v in sent] == [0, 30]
    assert stream.timer is None


async def test_changes_within_the_interval_are_coalesced_newest_wins() -> None:
    stream, measure, clock, sent = make()
    clock.now += INTERVAL
    measure.value = 0.1
    stream.touch()
    for value in (0.2, 0.3, 0.4):
        clock.now += 0.02
        measure.value = value
        assert not stream.touch()
    assert stream.timer is not None and len(sent) == 2
    clock.now += 0.05  # the timer fires at the due time
    stream.flush()
    assert [v.get("percentage") for v in sent] == [0, 10, 40]


async def test_a_flush_with_nothing_new_does_not_hold_back_the_next_change() -> None:
    """A tick that re-words nothing must not cost the next real change an interval."""
    stream, measure, clock, sent = make()
    clock.now += INTERVAL
    assert not stream.touch(), "nothing new: nothing sent"
    assert len(sent) == 1
    clock.now += RECHECK
    measure.value = 0.5
    assert stream.touch(), "the next change goes out at once"
    assert sent[-1]["percentage"] == 50
    clock.now += 0.001
    stream.text = "b"
    assert not stream.touch(), "but after a value sent, the interval holds again"
    stream.flush()  # the timer
    assert sent[-1]["message"] == "b"


async def test_begin_and_end_are_never_delayed_and_the_latest_state_is_flushed() -> None:
    stream, measure, _clock, sent = make()
    measure.value = 0.7
    stream.touch()
    assert len(sent) == 1, "within the interval after begin"
    stream.close("done", complete=True)
    assert [v["kind"] for v in sent] == ["begin", "report", "end"]
    assert sent[1]["percentage"] == 100 and sent[2]["message"] == "done"
    assert stream.timer is None


async def test_a_fraction_stream_sends_exact_fractions_and_no_end_value() -> None:
    stream, measure, clock, sent = make(shape=FractionStream)
    assert sent == [{"kind": "fraction", "fraction": 0.0, "message": "a"}]
    clock.now += INTERVAL
    measure.value = 1 / 3
    stream.touch()
    stream.close("1 ok", complete=False)
    assert sent[1:] == [{"kind": "fraction", "fraction": 0.333333, "message": "a"}]
