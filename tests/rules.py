"""The client-visible progress rules (docs/progress.md) as one checker, used by every test."""

from __future__ import annotations

import asyncio
from typing import Any

import psutil


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def waitgone(pids: list[int], seconds: float = 10) -> bool:
    """Wait (bounded) until every process in `pids` is gone."""
    for _ in range(int(seconds / 0.05)):
        if all(gone(p) for p in pids):
            return True
        await asyncio.sleep(0.05)
    return False


def check_stream(values: list[dict[str, Any]]) -> list[int]:
    """Assert one begin, reports, one end, and an honest percentage; return the percentages."""
    kinds = [v["kind"] for v in values]
    assert kinds, "no progress at all"
    assert kinds[0] == "begin", kinds
    assert kinds[-1] == "end", kinds
    assert kinds.count("begin") == 1 and kinds.count("end") == 1, kinds
    determinate = "percentage" in values[0]
    shown = [v["percentage"] for v in values if "percentage" in v]
    if not determinate:
        assert shown == [], f"percentage appeared in an indeterminate stream: {shown}"
    for p in shown:
        assert isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 100, p
    assert shown == sorted(shown), f"percentage went back: {shown}"
    return shown
