"""Narrowing a terminal run to what changed (`--changed-since`) and to one CI shard (`--shard`).

Both start from the run's full selection, planned as usual (bad input is refused before git is
asked anything), and keep broken projects in play: a changed broken project still fails the
run, and each broken project belongs to exactly one shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..planning import plan
from ..requests import RunRequest
from ..workspace import Workspace
from .changes import changed_files, dependents, projects_of
from .shards import partition, weights

__all__ = ["Narrowed", "narrow"]


@dataclass
class Narrowed:
    """The narrowed request (`projects` may be empty: nothing to run) and what to tell the
    person about it."""

    request: RunRequest
    notes: list[str] = field(default_factory=list)


def narrow(workspace: Workspace, request: RunRequest, *, changed_since: str | None = None,
           shard: tuple[int, int] | None = None,
           recorded: dict[tuple[str, str], float] | None = None) -> Narrowed:
    """`request` limited to the projects changed since `changed_since` (and their declared
    dependents), then to part `shard = (I, N)` of them, balanced by the `recorded` seconds.
    Raises `BadRequest` (bad input) or `changes.GitError` (git could not tell)."""
    full = plan(workspace, request.actions, request.projects)
    roots = sorted({c.project.root for c in full.children}
                   | {Path(e["project"]) for e in full.config_errors})
    notes = []
    if changed_since is not None:
        files = [f for folder in workspace.folders for f in changed_files(folder, changed_since)]
        known = [*workspace.projects, *workspace.problems]
        graph = {root: p.depends_on for root, p in workspace.projects.items()}
        selected = dependents(projects_of(files, known), graph)
        notes += [f"{workspace.projects[root].name}: depends_on {target} is not a FineCode "
                  "project of this workspace" for root, targets in sorted(graph.items())
                  for target in targets if target not in known]
        before = len(roots)
        roots = [r for r in roots if r in selected]
        notes.append(f"--changed-since {changed_since}: {len(files)} changed file(s), "
                     f"{len(roots)} of {before} project(s) to run")
    if shard is not None:
        index, count = shard
        actions = {str(r): [a for a in request.actions if a in workspace.projects[r].actions]
                   if r in workspace.projects else [] for r in roots}
        parts = partition(weights(list(actions), actions, recorded or {}), count)
        before = len(roots)
        roots = [r for r in roots if str(r) in set(parts[index - 1])]
        split = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8]
        notes.append(f"--shard {index}/{count}: {len(roots)} of {before} project(s) "
                     f"(split {split}: the same in every job that split the same way)")
    return Narrowed(dataclasses.replace(request, projects=[str(r) for r in roots]), notes)
