"""Tasks that run together and are cancelled together, from the standard library's parts.

`CancelScope` is an `asyncio.TaskGroup` inside an `asyncio.timeout(None)`. `cancel()` expires the
timeout at once: the timeout cancels the task that entered the scope, the task group then
cancels every task started in it and waits for them, and the scope's exit absorbs its own
cancellation. A cancel from outside (of the task that entered it) still propagates as
`CancelledError`. This is what trio and anyio call a cancel scope; asyncio has the parts but
not the name.

Differences from a bare `TaskGroup`: an exception raised by the code inside the `async with`
comes out as itself (the group would wrap it in an `ExceptionGroup`), and `start()` refuses
work once the scope is cancelled or closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["CancelScope"]

T = TypeVar("T")


class CancelScope:
    """One batch's (or one execution's) tasks: started into it, cancelled with it.

    ```
    async with scope:          # the task running this is the scope's host
        scope.start(work())    # a task of the scope
    ...
    scope.cancel()             # from anywhere on the loop: every task of the scope ends
    ```
    """

    def __init__(self) -> None:
        self._stack: contextlib.AsyncExitStack | None = None
        self._timeout: asyncio.Timeout | None = None
        self._group: asyncio.TaskGroup | None = None
        self._host: asyncio.Task[Any] | None = None
        self._pending_at_entry = 0  # cancel requests the host already had when it entered
        self.cancel_called = False
        self.closed = False

    @property
    def open(self) -> bool:
        """Entered, not exited, not cancelled: new tasks may start."""
        return self._group is not None and not self.closed and not self.cancel_called

    async def __aenter__(self) -> CancelScope:
        if self._stack is not None:
            raise RuntimeError("a CancelScope is entered once")
        self._host = asyncio.current_task()
        assert self._host is not None, "a CancelScope is entered inside a task"
        self._pending_at_entry = self._host.cancelling()
        stack = self._stack = contextlib.AsyncExitStack()
        self._timeout = await stack.enter_async_context(asyncio.timeout(None))
        self._group = await stack.enter_async_context(asyncio.TaskGroup())
        if self.cancel_called:  # cancelled before it was entered
            self._expire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        assert self._stack is not None and self._timeout is not None and self._host is not None
        try:
            try:
                return bool(await self._stack.__aexit__(exc_type, exc, tb))
            except TimeoutError:
                if self._timeout.expired():
                    return True  # our own cancel, converted by the timeout
                raise
            except asyncio.CancelledError:
                # Python 3.11's timeout converts its cancel only when the host has no other
                # cancel request pending: one pending before the scope was entered is no news.
                if self._timeout.expired() and self._host.cancelling() <= self._pending_at_entry:
                    return True
                raise
            except BaseExceptionGroup as group:
                if exc is None or list(group.exceptions) != [exc]:
                    raise
            return False  # the body's own error (the group wrapped it): it propagates as itself
        finally:
            self.closed = True

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `work` as a task of the scope; refused (RuntimeError) once it is not `open`."""
        if not self.open:
            work.close()
            raise RuntimeError("the scope is cancelled or closed: no new work starts in it")
        assert self._group is not None
        return self._group.create_task(work)

    def cancel(self) -> None:
        """Cancel every task of the scope and the code inside it; the scope's exit then absorbs
        the cancellation. Before the scope is entered, it is cancelled as soon as it is; after
        it closed, nothing happens."""
        if self.cancel_called or self.closed:
            return
        self.cancel_called = True
        if self._group is not None:
            self._expire()

    def cancelled_from_outside(self) -> bool:
        """While the scope is open: has its host been asked to cancel by anyone but the scope
        since it entered (a cancel that has not reached the scope's tasks yet)?"""
        if self._host is None or self._timeout is None or self.closed:
            return False
        own = 1 if self._timeout.expired() else 0  # fired, not yet absorbed at the exit
        return self._host.cancelling() - self._pending_at_entry - own > 0

    def _expire(self) -> None:
        assert self._timeout is not None
        self._timeout.reschedule(asyncio.get_running_loop().time())
