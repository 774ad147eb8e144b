"""Child tokens: which code folds the progress of which child execution.

The WM mints an internal token (`fc-N`) per child execution and sends it with the `run`; the
runner's `$/progress` on that token is handed to whoever minted it, and a runner's request
naming the token (`runAction`) finds the execution that owns it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["ProgressRouter"]

Log = Callable[[str], None]
RETIRED_TOKENS = 1024  # released tokens remembered, so a late value on one is dropped quietly


class ProgressRouter:
    """Maps the WM's internal child tokens to the code that folds their progress."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._routes: dict[str, Callable[[Any], None]] = {}
        self._owners: dict[str, object] = {}
        # Released tokens: a cancelled child's runner may still send its last values there.
        self._retired: dict[str, None] = {}
        self._ids = itertools.count(1)
        self.dropped = 0

    def mint(self, deliver: Callable[[Any], None], owner: object = None) -> str:
        """A fresh child token; `owner` is the execution it names (for runner requests)."""
        token = f"fc-{next(self._ids)}"
        self._routes[token] = deliver
        if owner is not None:
            self._owners[token] = owner
        return token

    def owner(self, token: Any) -> object:
        return self._owners.get(token) if isinstance(token, str) else None

    def release(self, token: str) -> None:
        self._owners.pop(token, None)
        if self._routes.pop(token, None) is not None:
            self._retired[token] = None
            if len(self._retired) > RETIRED_TOKENS:
                del self._retired[next(iter(self._retired))]

    def deliver(self, params: Any) -> None:
        token = params.get("token") if isinstance(params, dict) else None
        route = self._routes.get(token) if isinstance(token, str) else None
        if route is None:
            if token in self._retired:
                return
            self.dropped += 1
            if self.dropped <= 10 or self.dropped % 10_000 == 0:
                self._log(f"dropped $/progress for an unknown token ({self.dropped} so far): "
                          f"{str(params)[:120]}")
            return
        route(params.get("value"))
