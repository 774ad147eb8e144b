"""Retry helper for flaky account backend calls."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_ATTEMPTS = 3
BASE_DELAY = 0.3


class AccountUnavailable(RuntimeError):
    """The account backend kept failing after every retry."""


def backoff_delays(
    attempts: int = MAX_ATTEMPTS, base: float = BASE_DELAY
) -> list[float]:
    """Exponential delays with jitter, so that clients do not retry in lockstep."""
    return [base * 2**attempt + random.uniform(0, base) for attempt in range(attempts)]


async def call_with_retry(operation: Callable[[], Awaitable[T]]) -> T:
    last_error: Exception | None = None
    for delay in [*backoff_delays(), None]:
        try:
            return await operation()
        except (ConnectionError, TimeoutError) as error:
            last_error = error
            if delay is None:
                break
            await asyncio.sleep(delay)
    raise AccountUnavailable(str(last_error)) from last_error
