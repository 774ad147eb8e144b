"""The runner lifecycle state machine (finecode_wm.runners.lifecycle): pure, no processes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm.runners.lifecycle import LifecycleError, RunnerState

pytestmark = pytest.mark.timeout(60)


def test_a_starting_runner_takes_leases_but_is_never_evictable() -> None:
    state = RunnerState()
    assert state.accepts_work and not state.evictable
    state.lease()  # the request that started it waits for it
    state.started()
    assert state.state == "ready" and not state.evictable
    state.release(now=5.0)
    assert state.evictable and state.last_used == 5.0


def test_an_unanswered_cancel_drains_until_answered() -> None:
    state = RunnerState(state="ready")
    state.cancel_sent()
    assert state.state == "draining" and not state.accepts_work and not state.evictable
    with pytest.raises(LifecycleError):
        state.lease()
    state.cancel_answered()
    assert state.state == "ready" and state.accepts_work


def test_retired_runner_stops_only_when_its_leases_are_done() -> None:
    state = RunnerState(state="ready")
    state.lease()
    state.retire()
    assert state.state == "draining" and not state.stop_due
    state.release(now=1.0)
    assert state.stop_due
    state.cancel_answered()  # a stray late answer does not bring it back
    assert state.state == "draining"


def test_retired_while_starting_drains_once_started() -> None:
    state = RunnerState()
    state.retire()
    state.started()
    assert state.state == "draining" and state.stop_due


def test_misuse_is_a_bug() -> None:
    state = RunnerState()
    with pytest.raises(LifecycleError):
        state.release(now=0.0)
    state.stopped()
    with pytest.raises(LifecycleError):
        state.started()
    with pytest.raises(LifecycleError):
        state.lease()


ops = st.lists(st.sampled_from(["started", "lease", "release", "cancel_sent", "cancel_answered",
                                "retire", "stopped"]), max_size=60)


@settings(max_examples=500, deadline=None)
@given(ops)
def test_any_sequence_keeps_the_invariants(script: list[str]) -> None:
    """Whatever the pool does: no work on a draining/stopped runner, no eviction of a busy or
    starting one, stopped is final, and the lease count never goes negative."""
    state = RunnerState()
    was_stopped = False
    for op in script:
        before = state.state
        try:
            if op == "release":
                state.release(now=1.0)
            else:
                getattr(state, op)()
        except LifecycleError:
            assert (op == "lease" and before in ("draining", "stopped")) or \
                (op == "release" and state.leases == 0) or (op == "started" and
                                                             before != "starting")
            continue
        assert state.leases >= 0
        if was_stopped:
            assert state.state == "stopped"
        was_stopped = state.state == "stopped"
        if state.evictable:
            assert state.state == "ready" and state.leases == 0
        if state.state == "ready":
            assert state.cancels == 0 and not state.retiring
        if state.stop_due:
            assert state.retiring and state.leases == 0
