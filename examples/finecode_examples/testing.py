"""pytest-backed ``test`` and ``discover_tests`` handlers.

pytest runs in the project's own environment (the interpreter running this handler, which is the
project's `python`), from the project root (`_pytest_child`). A small plugin in that child
(`pytest_plugin/finecode_pytest_events.py`) streams what happens on a pipe of its own — never
by reading pytest's terminal output, which the project's options and plugins shape: collection
first (no total yet: the bar waits, the narrative says so), then the number of collected tests
as a late total and one advance per finished test. Failures, errors and files that cannot be
collected become findings at their lines (`_test_session`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finecode_examples._pytest_child import run_pytest
from finecode_examples._test_session import OUTCOMES, Session

if TYPE_CHECKING:
    from finecode_er.api import RunActionContext

__all__ = ["Options", "discover_tests", "test"]

CONFIG_KEYS = frozenset({"args", "env"})


async def test(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Run the project's tests; one progress step per finished test, failures as findings."""
    session, seconds = await _session(ctx, "Testing", collect_only=False)
    counts = {("errors" if o == "error" else o): session.outcomes[o] for o in OUTCOMES}
    return {"summary": session.summary(seconds), "collected": session.total, **counts,
            "not_run": max(session.total - session.done, 0),
            "collection_errors": session.collection_errors, "duration": round(seconds, 3),
            "exit_code": session.exitstatus, "diagnostics": session.diagnostics}


async def discover_tests(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """The ids of the project's tests (pytest's node ids), and the files it cannot collect."""
    session, _seconds = await _session(ctx, "Discovering tests", collect_only=True)
    return {"summary": f"{session.total} tests", "count": session.total,
            "collection_errors": session.collection_errors, "tests": session.ids or [],
            "diagnostics": session.diagnostics}


async def _session(ctx: RunActionContext, title: str, *,
                   collect_only: bool) -> tuple[Session, float]:
    """One pytest run with progress: narrated while it collects, then (running tests) the
    number collected as a late total and one advance per finished test."""
    options = Options.parse(ctx.config)
    session = Session(ctx.project_root)
    begun = time.monotonic()
    async with ctx.progress(title, cancellable=True) as progress:
        await progress.report(message="collecting tests")

        async def on_events(events: list[Any]) -> None:
            finished = session.done
            for event in events:
                kind = session.fold(event)
                if kind == "collected":
                    if not collect_only:
                        await progress.set_total(session.total)
                    await progress.report(message=f"collected {session.total} tests")
                elif kind == "collect_error":
                    await progress.report(
                        message=f"cannot collect {session.diagnostics[-1]['path']}")
            if session.done > finished:
                await progress.advance(session.done - finished,
                                       message=session.progress_message())

        returncode, output = await run_pytest(ctx.project_root,
                                              options.command(collect_only=collect_only),
                                              on_events, dict(options.env))
    seconds = time.monotonic() - begun
    session.check(returncode, output)
    return session, seconds


@dataclass(frozen=True)
class Options:
    """The handlers' config, checked: pytest's `args` and extra `env` variables."""

    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, config: Mapping[str, Any] | None) -> Options:
        config = config or {}
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
        args = config.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"config 'args' must be a list of strings, got {args!r}")
        env = config.get("env", {})
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and k and "=" not in k and isinstance(v, str)
                for k, v in env.items()):
            raise ValueError(f"config 'env' must be a table of strings, got {env!r}")
        return cls(tuple(args), tuple(env.items()))

    def command(self, *, collect_only: bool) -> list[str]:
        """pytest's arguments: quiet output (only kept to explain a crash), every collectable
        file run even when another one cannot be collected, then the action's own `args`."""
        return ["-q", "--continue-on-collection-errors",
                *(["--collect-only"] if collect_only else []), *self.args]
