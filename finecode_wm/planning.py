"""What a request selects: every asked action in every selected project that defines it.

Reads the workspace model and resolves the paths asked for; starts nothing. Bad input is a
`BadRequest`, which every front end answers its own way (LSP `InvalidParams`, a usage error in
the terminal, an MCP tool error); a selected project whose config is broken is no bad input but
a config error of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .results import ConfigError
from .workspace import Project, Workspace

__all__ = ["BadRequest", "BatchOptions", "Plan", "Planned", "plan"]


class BadRequest(ValueError):
    """Input a person has to fix, with a message that says how."""


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs its children (the request's `options`)."""

    concurrent: bool = True
    stop_on_failure: bool = False
    timeout: float | None = None
    cache: bool = True  # reuse cached results (false: run everything, refresh the cache)


@dataclass(frozen=True)
class Planned:
    """One child execution to run: an action in a project."""

    project: Project
    action: str


@dataclass(frozen=True)
class Plan:
    """The children to run, and the config problems of the selected projects that cannot run
    (`{project, error}`: reported in the result, never run)."""

    children: list[Planned]
    config_errors: list[ConfigError]


def _nothing_here(workspace: Workspace) -> str:
    folders = ", ".join(map(str, workspace.folders)) or "the workspace"
    skipped = f"; {len(workspace.skipped)} pyproject.toml skipped as unreadable" \
        if workspace.skipped else ""
    return (f"no FineCode projects under {folders} (a project is a directory whose "
            f"pyproject.toml has a [tool.finecode] table{skipped})")


def plan(workspace: Workspace, actions: list[str], projects: list[str] | None = None) -> Plan:
    """Every selected action in every selected project that defines it, in a stable order.

    A selected project whose config is broken is not bad input: it is a config error of the
    run. An action is unknown when no selected project defines it, broken ones included (by
    the names they declare; one whose file did not parse might declare any).
    """
    if not actions:
        raise BadRequest("'actions' must name at least one action")
    broken: list[Path] = []
    if projects is None:
        selected = sorted(workspace.projects.values(), key=lambda p: p.root)
        broken = sorted(workspace.problems)
        if not selected and not broken:
            raise BadRequest(_nothing_here(workspace))
    else:
        selected = []
        for raw in projects:
            path = Path(raw)
            if not path.is_absolute():
                raise BadRequest(f"project path must be absolute: {raw!r}")
            try:
                path = path.resolve()
            except (OSError, ValueError) as exc:
                raise BadRequest(f"project path {raw!r:.80} cannot be used: {exc}") from None
            if not workspace.contains(path):
                raise BadRequest(f"{path} is outside the workspace folders "
                                 f"({', '.join(map(str, workspace.folders)) or 'none'})")
            project = workspace.projects.get(path)
            if project is None and path in workspace.problems:
                if path not in broken:
                    broken.append(path)
                continue
            if project is None and not path.exists():
                raise BadRequest(f"{path} does not exist")
            if project is None:
                skipped = workspace.skipped.get(path)
                raise BadRequest(f"{path} is not a FineCode project: its pyproject.toml was "
                                 f"{skipped}" if skipped else
                                 f"{path} is not a FineCode project (no [tool.finecode] table)")
            if project not in selected:
                selected.append(project)
    declared = [workspace.declares.get(b) for b in broken]
    for action in actions:
        if not any(action in p.actions for p in selected) and \
                not any(names is None or action in names for names in declared):
            known = sorted({a for p in selected for a in p.actions}.union(*filter(None, declared)))
            raise BadRequest(f"unknown action {action!r}: no selected project defines it "
                             f"(defined: {', '.join(known) or 'none'})")
    return Plan([Planned(p, a) for p in selected for a in dict.fromkeys(actions) if a in p.actions],
                [ConfigError(project=str(b), error=workspace.problems[b]) for b in broken])
