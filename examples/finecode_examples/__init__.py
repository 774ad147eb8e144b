"""Example FineCode handlers: ruff lint/format, a pure-Python stats action, pytest tests and test
discovery, uv environments, and a check that delegates to the others.

They double as a reference for the handler API (``async def handler(params, ctx)``)
and as realistic workloads for exercising progress aggregation in the WM.
"""

from __future__ import annotations

__all__ = ["check", "envs", "ruff", "stats", "testing"]
