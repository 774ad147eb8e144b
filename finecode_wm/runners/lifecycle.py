"""The life of one runner process as a pure state machine (no I/O, no clock of its own).

```
starting ──started──▶ ready ──cancel unanswered / retire──▶ draining ──idle & retired──▶ stopped
    │                   ▲                                      │
    └──failed──▶ stopped └──────────── cancels answered ───────┘   (any state ──died──▶ stopped)
```

- Work is leased only from a `starting` runner (the lease waits for it) or a `ready` one; never
  from `draining` or `stopped`. A runner whose handler ignores a cancel is `draining`, so the next
  request starts a fresh runner instead of landing on one about to be killed.
- Only a `ready` runner with nothing leased is `evictable`; a starting runner never is.
- `stop_due` says when a retired runner may be stopped: it has drained its leases, and no stop is
  under way (`stopping`: no second stop, and no cancel bookkeeping for its own `shutdown`).
- `killed_because` keeps why the WM killed the process, for the errors of what ran in it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LifecycleError", "RunnerState"]

STARTING, READY, DRAINING, STOPPED = "starting", "ready", "draining", "stopped"


class LifecycleError(RuntimeError):
    """An operation the state does not allow: a bug in the pool, never a runner's fault."""


@dataclass
class RunnerState:
    state: str = STARTING
    leases: int = 0  # executions using (or waiting for) this runner
    cancels: int = 0  # cancelled requests the runner has not answered yet
    retiring: bool = False  # evicted or replaced: stop once idle
    stopping: bool = False  # a stop is under way
    killed_because: str | None = None  # why the WM killed the process, when it did
    last_used: float = 0.0

    @property
    def accepts_work(self) -> bool:
        return self.state in (STARTING, READY)

    @property
    def evictable(self) -> bool:
        return self.state == READY and self.leases == 0

    @property
    def stop_due(self) -> bool:
        return self.state == DRAINING and self.retiring and self.leases == 0 and not self.stopping

    @property
    def live(self) -> bool:
        return self.state != STOPPED

    def _settle(self) -> None:
        if self.state in (READY, DRAINING):
            self.state = DRAINING if (self.retiring or self.cancels) else READY

    def started(self) -> None:
        if self.state != STARTING:
            raise LifecycleError(f"started in state {self.state}")
        self.state = READY
        self._settle()

    def lease(self) -> None:
        if not self.accepts_work:
            raise LifecycleError(f"lease in state {self.state}")
        self.leases += 1

    def release(self, now: float) -> None:
        if self.leases <= 0:
            raise LifecycleError("release without a lease")
        self.leases -= 1
        self.last_used = now

    def cancel_sent(self) -> None:
        self.cancels += 1
        self._settle()

    def cancel_answered(self) -> None:
        self.cancels = max(0, self.cancels - 1)
        self._settle()

    def retire(self) -> None:
        self.retiring = True
        self._settle()

    def stop_begun(self) -> None:
        self.stopping = True

    def killed(self, reason: str) -> None:
        """The WM kills the process, for `reason`."""
        self.killed_because = reason

    def stopped(self) -> None:
        self.state = STOPPED
