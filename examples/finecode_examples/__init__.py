"""Example FineCode handlers: ruff lint/format and a pure-Python stats action.

They double as a reference for the handler API (``async def handler(params, ctx)``)
and as realistic workloads for exercising progress aggregation in the WM.
"""

from __future__ import annotations

__all__ = ["ruff", "stats"]
