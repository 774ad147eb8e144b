"""A small TTL cache for ticket lookups that are expensive to repeat."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_TTL = 61.0


class TicketCache(Generic[V]):
    """Maps keys to values that expire ``ttl`` seconds after being stored."""

    def __init__(
        self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, value: V) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)

    def get_or_load(self, key: str, load: Callable[[str], V]) -> V:
        value = self.get(key)
        if value is None:
            value = load(key)
            self.put(key, value)
        return value

    def purge(self) -> int:
        """Drop expired entries; return how many were removed."""
        now = self._clock()
        expired = [key for key, entry in self._entries.items() if entry[0] <= now]
        for key in expired:
            del self._entries[key]
        return len(expired)
