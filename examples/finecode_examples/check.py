"""A ``check`` action that delegates: it runs ``lint`` and ``format`` through the WM.

It shows ADR-0010's action boundary from the handler's side: the delegated actions report
nothing the client sees on their own; ``check`` owns the narrative and attaches each delegated
run to one step of its own scope, so the bar moves while ``lint`` runs and the editor reads
``check · small: 2/3 · lint · small: utils.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finecode_er.api import RunActionContext

DEFAULT_ACTIONS = ("lint", "format")


async def check(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Run each configured action in this project, one step each; gather their findings."""
    actions = list(ctx.config.get("actions", DEFAULT_ACTIONS))
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
