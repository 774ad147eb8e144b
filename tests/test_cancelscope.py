"""`CancelScope`: a TaskGroup under a timeout that `cancel()` expires. Its own cancel is absorbed,
a cancel from outside propagates, the body's errors come out as themselves."""

from __future__ import annotations

import asyncio

import pytest

from finecode_wm.cancelscope import CancelScope

pytestmark = pytest.mark.timeout(10)


async def forever(log: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        raise


async def test_cancel_ends_every_task_and_the_scope_absorbs_it() -> None:
    log: list[str] = []
    scope = CancelScope()
    async with scope:
        scope.start(forever(log, "a"))
        scope.start(forever(log, "b"))
        await asyncio.sleep(0)
        scope.cancel()
        await asyncio.Event().wait()  # the body is cancelled too
    assert sorted(log) == ["a cancelled", "b cancelled"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0, "nothing is left pending on the host"
    await asyncio.sleep(0.01)  # and no late cancel arrives


async def test_a_cancel_from_elsewhere_on_the_loop_while_the_scope_waits() -> None:
    log: list[str] = []
    scope = CancelScope()
    asyncio.get_running_loop().call_later(0.01, scope.cancel)
    async with scope:
        scope.start(forever(log, "a"))
    assert log == ["a cancelled"] and scope.closed


async def test_a_cancel_before_entry_cancels_at_entry_and_no_work_starts() -> None:
    scope = CancelScope()
    scope.cancel()
    async with scope:
        assert not scope.open
        work = forever([], "never")
        with pytest.raises(RuntimeError):
            scope.start(work)
        assert work.cr_frame is None, "the refused coroutine is closed, never left unawaited"
        await asyncio.sleep(1)  # cancelled at once
    assert scope.closed


async def test_a_cancel_from_outside_propagates_and_cancels_the_tasks() -> None:
    log: list[str] = []

    async def host() -> None:
        scope = CancelScope()
        async with scope:
            scope.start(forever(log, "a"))
            await asyncio.sleep(0)
            assert not scope.cancelled_from_outside()
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            assert scope.cancelled_from_outside()
            await asyncio.sleep(1)

    task = asyncio.create_task(host())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["a cancelled"]


async def test_an_outside_cancel_beside_the_scope_s_own_still_propagates() -> None:
    async def host(scope: CancelScope) -> None:
        async with scope:
            scope.start(forever([], "a"))
            await asyncio.sleep(1)

    scope = CancelScope()
    task = asyncio.create_task(host(scope))
    await asyncio.sleep(0)
    scope.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_pending_before_entry_does_not_hide_the_scope_s_own() -> None:
    """Python 3.11's timeout converts its cancel only when nothing else is pending: a cancel the
    host caught before it entered the scope (and never uncancelled) is no news to the scope."""
    task = asyncio.current_task()
    assert task is not None
    try:
        task.cancel()
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        pass
    assert task.cancelling() == 1
    scope = CancelScope()
    async with scope:
        scope.start(forever([], "a"))
        await asyncio.sleep(0)
        assert not scope.cancelled_from_outside()
        scope.cancel()
    assert task.cancelling() == 1
    task.uncancel()


async def test_the_body_s_error_comes_out_as_itself_and_the_tasks_end() -> None:
    log: list[str] = []
    scope = CancelScope()
    with pytest.raises(ValueError, match="boom"):
        async with scope:
            scope.start(forever(log, "a"))
            await asyncio.sleep(0)
            raise ValueError("boom")
    assert log == ["a cancelled"]


async def test_no_work_starts_after_the_scope_closed_and_a_late_cancel_is_nothing() -> None:
    scope = CancelScope()
    async with scope:
        done = scope.start(asyncio.sleep(0, result=7))
    assert done.result() == 7 and scope.closed and not scope.open
    with pytest.raises(RuntimeError):
        scope.start(asyncio.sleep(0))
    scope.cancel()
    assert not scope.cancel_called


async def test_a_cancel_right_before_the_exit_leaves_no_cancel_behind() -> None:
    """No task left: the exit does not wait, and the timer that would cancel the host is
    dropped with the timeout."""
    scope = CancelScope()
    async with scope:
        scope.cancel()
    await asyncio.sleep(0.01)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
