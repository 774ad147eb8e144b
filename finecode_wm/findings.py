"""Findings as text: the terminal's listing (ruff-like lines, or GitHub Actions annotations for
CI) and the short summary an agent reads first (MCP).

Paths are shown relative to a base directory (the current directory in the terminal, the
workspace root for agents), grouped by file and sorted by position. Rendering only: the findings
come from `diagnostics.findings_of`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .diagnostics import Finding, FindingStore, findings_of

__all__ = ["FORMATS", "MAX_FINDINGS", "collect", "config_error_annotations", "failing",
           "outside_note", "outside_notes", "render",
           "summary_text"]

FORMATS = ("text", "github")
MAX_FINDINGS = 200
NOT_FAILING = ("information", "hint")  # severities that are listed but do not fail a run


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


def failing(found: list[tuple[Path, Finding]]) -> list[Finding]:
    """The findings that fail a run: all but those of severity information and hint."""
    return [finding for _, finding in found if finding.get("severity") not in NOT_FAILING]


def render(found: list[tuple[Path, Finding]], output_format: str, cwd: Path) -> list[str]:
    """The lines to print for `found` in `output_format` (one of `FORMATS`)."""
    line = _github if output_format == "github" else _text
    return [line(os.path.relpath(path, cwd), finding) for path, finding in found]


def _text(shown: str, f: Finding) -> str:
    code = f"{f['code']} " if "code" in f else ""
    return f"{shown}:{f['line']}:{f['column']}: {code}{f['message']}"


def _github(shown: str, f: Finding) -> str:
    """`::warning file=…,line=…,col=…,title=CODE::message`; only `error` findings are errors."""
    level = "error" if f.get("severity") == "error" else "warning"
    props = [f"file={_prop(shown)}", f"line={f['line']}", f"col={f['column']}"]
    if "end_line" in f:
        props.append(f"endLine={f['end_line']}")
    if "end_column" in f:
        props.append(f"endColumn={f['end_column']}")
    if "code" in f:
        props.append(f"title={_prop(f['code'])}")
    return f"::{level} {','.join(props)}::{_data(f['message'])}"


def config_error_annotations(errors: list[dict[str, str]], cwd: Path) -> list[str]:
    """One `::error` annotation per config error, on the project's pyproject.toml."""
    return [f"::error file={_prop(os.path.relpath(Path(e['project']) / 'pyproject.toml', cwd))},"
            f"title=FineCode config error::{_data(e['error'])}" for e in errors]


def _data(text: str) -> str:
    """Workflow-command escaping of the message part."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Workflow-command escaping of a property value (also `:` and `,`)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _status_line(entry: dict[str, Any], names: dict[str, str]) -> str:
    name = names.get(entry["project"], entry["project"])
    line = f"{entry['status']:<9} {name} · {entry['action']}"
    if entry.get("error"):
        line += ": " + str(entry["error"]).strip().split("\n", 1)[0][:200]
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
    findings = render(collect(entries), "text", base)
    lines += outside_notes(entries, names)
    if findings:
        lines += ["", f"{len(findings)} finding(s):", *findings[:MAX_FINDINGS]]
        if len(findings) > MAX_FINDINGS:
            lines.append(f"… and {len(findings) - MAX_FINDINGS} more in the structured result")
    return "\n".join(lines)
