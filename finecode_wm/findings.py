"""Findings of a run: gathered for the terminal's listing (its formats are in `formats`), and
the short summary an agent reads first (MCP).

Paths are shown relative to a base directory (the current directory in the terminal, the
workspace root for agents), grouped by file and sorted by position. The findings come from
`diagnostics.findings_of`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .diagnostics import Finding, FindingStore, findings_of
from .formats import at_least, shorten, text_lines

__all__ = ["MAX_FINDINGS", "MAX_TEXT", "collect", "counted", "failing", "outside_note",
           "outside_notes", "summary_text"]

MAX_FINDINGS = 200
MAX_TEXT = 20_000  # characters of findings in an agent's text (all are in the structured result)
MAX_LINE = 1_000  # characters of one finding there


def collect(entries: list[dict[str, Any]]) -> list[tuple[Path, Finding]]:
    """Every finding of every result entry, grouped by file and sorted (each shown once, as in
    the editor)."""
    store = FindingStore()
    for entry in entries:
        by_file = findings_of(entry)
        if by_file is not None:
            store.record(Path(entry["project"]), entry["action"], by_file)
    files = {path for project in store.projects() for path in store.files(project)}
    return [(path, finding) for path in sorted(files, key=str) for finding in store.items(path)]


def counted(entry: dict[str, Any]) -> int | None:
    """How many findings one result entry reported (those `collect` lists; None: it reported
    no findings list)."""
    by_file = findings_of(entry)
    return None if by_file is None else sum(len(found) for found in by_file.values())


def outside_note(project: str, action: str, count: int) -> str:
    """The note for findings dropped because they named files outside their project."""
    return (f"{project} · {action}: dropped {count} finding(s) for files outside the project "
            "(a finding's path must be inside its project)")


def outside_notes(entries: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """One `outside_note` per result entry that had such findings."""
    notes = []
    for entry in entries:
        by_file = findings_of(entry)
        if by_file is not None and by_file.outside:
            notes.append(outside_note(names.get(entry["project"], entry["project"]),
                                      entry["action"], by_file.outside))
    return notes


def failing(found: list[tuple[Path, Finding]], threshold: str = "warning") -> list[Finding]:
    """The findings that fail a run: those as severe as `threshold` or more (by default errors
    and warnings; information and hint findings are listed but do not fail it)."""
    return [finding for _, finding in found if at_least(finding, threshold)]


def _status_line(entry: dict[str, Any], names: dict[str, str]) -> str:
    name = names.get(entry["project"], entry["project"])
    line = f"{entry['status']:<9} {name} · {entry['action']}"
    if entry.get("error"):
        line += ": " + shorten(str(entry["error"]), 200)
    return line


def summary_text(result: dict[str, Any], *, names: dict[str, str], base: Path) -> str:
    """The summary counts, one line per child execution, then the findings (at most a few)."""
    entries: list[dict[str, Any]] = result["results"]
    summary = result["summary"]
    counts = ", ".join(f"{summary[s]} {s}" for s in ("ok", "failed", "cancelled") if summary[s])
    lines = []
    errors = result.get("config_errors", [])
    if errors:  # first: nothing else in the result covers these projects
        lines += [*(f"config error: {os.path.relpath(e['project'], base)}: {e['error']}"
                    for e in errors), ""]
    lines += [f"FineCode: {counts or 'nothing ran'}", *(_status_line(e, names) for e in entries)]
    findings = text_lines(collect(entries), base)
    lines += outside_notes(entries, names)
    if findings:
        lines += ["", f"{len(findings)} finding(s):"]
        budget = MAX_TEXT
        for shown, finding in enumerate(findings):
            line = finding if len(finding) <= MAX_LINE else finding[:MAX_LINE - 1] + "…"
            budget -= len(line) + 1
            if shown == MAX_FINDINGS or budget < 0:
                lines.append(f"… and {len(findings) - shown} more finding(s) in the structured "
                             "result")
                break
            lines.append(line)
    return "\n".join(lines)
