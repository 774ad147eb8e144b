"""A ``check`` action that delegates: it runs ``lint``, ``format`` and ``test`` through the WM.

It shows ADR-0010's action boundary from the handler's side: the delegated actions report
nothing the client sees on their own; ``check`` owns the narrative and attaches each delegated
run to one step of its own scope, so the bar moves while ``lint`` runs and the editor reads
``check · small: 2/3 · lint · small: utils.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finecode_er.config import ConfigError, load_project

if TYPE_CHECKING:
    from finecode_er.api import RunActionContext

DEFAULT_ACTIONS = ("lint", "format", "test")
CONFIG_KEYS = frozenset({"actions"})


async def check(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Run each configured action in this project, one step each; gather their findings."""
    actions = await _actions(ctx.config or {}, ctx.project_root)
    summaries: dict[str, dict[str, int]] = {}
    diagnostics: list[dict[str, Any]] = []
    failures: list[str] = []
    async with ctx.progress("Checking", total=len(actions), cancellable=True) as progress:
        for action in actions:
            run = await ctx.run_action(action, params=params, progress=progress)
            summaries[action] = run["summary"]
            for entry in run["results"]:
                if entry["status"] != "ok":
                    failures.append(f"{action}: {entry.get('error')}")
                elif isinstance(entry.get("result"), dict):
                    diagnostics.extend(entry["result"].get("diagnostics", []))
            await progress.advance(1, message=f"{action} done")
    if failures:
        raise RuntimeError("; ".join(failures))
    return {"actions": summaries, "diagnostics": diagnostics}


async def _actions(config: dict[str, Any], root: Path) -> list[str]:
    """The configured `actions`, run as given (one the project lacks fails the check); by
    default those of lint, format and test that the project defines, so a project without
    tests is still checked."""
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
    if "actions" in config:
        actions = config["actions"]
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ValueError(f"config 'actions' must be a list of action names, got {actions!r}")
        return actions
    try:
        project = await asyncio.to_thread(load_project, root)
    except ConfigError:
        project = None  # the WM reports the config problem; delegating names it too
    if project is None:
        return list(DEFAULT_ACTIONS)
    return [action for action in DEFAULT_ACTIONS if action in project.actions]
