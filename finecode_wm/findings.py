"""A run result as short plain text with its findings, for readers that take text first (agents).

Diagnostics in results (the fixed shape: `path` relative to the project root, 1-based `line`
and `column`) become compiler-style lines relative to the workspace folder,
`small/tinytools/x.py:3:1: F401 message`, which agents and editors both know how to follow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["MAX_FINDINGS", "finding_lines", "summary_text"]

MAX_FINDINGS = 200


def _location(project: str, path: Any, base: Path | None) -> str:
    full = Path(project) / str(path)
    if base is not None and full.is_relative_to(base):
        return os.path.relpath(full, base)
    return str(full)


def finding_lines(entries: list[dict[str, Any]], base: Path | None = None) -> list[str]:
    """`path:line:column: [severity] code message` for every well-formed diagnostic, in order."""
    lines = []
    for entry in entries:
        result = entry.get("result")
        diagnostics = result.get("diagnostics") if isinstance(result, dict) else None
        if not isinstance(diagnostics, list):
            continue
        for item in diagnostics:
            if not isinstance(item, dict) or "path" not in item or "message" not in item:
                continue
            where = (f"{_location(entry['project'], item['path'], base)}:"
                     f"{item.get('line', 1)}:{item.get('column', 1)}:")
            severity = item.get("severity")
            words = [where, *([severity] if severity and severity != "error" else []),
                     *([str(item["code"])] if item.get("code") else []), str(item["message"])]
            lines.append(" ".join(words))
    return lines


def _status_line(entry: dict[str, Any], names: dict[str, str]) -> str:
    name = names.get(entry["project"], entry["project"])
    line = f"{entry['status']:<9} {name} · {entry['action']}"
    if entry.get("error"):
        line += ": " + str(entry["error"]).strip().split("\n", 1)[0][:200]
    return line


def summary_text(result: dict[str, Any], *, names: dict[str, str], base: Path | None) -> str:
    """The summary counts, one line per child execution, then the findings (at most a few)."""
    entries: list[dict[str, Any]] = result["results"]
    summary = result["summary"]
    counts = ", ".join(f"{summary[s]} {s}" for s in ("ok", "failed", "cancelled") if summary[s])
    lines = [f"FineCode: {counts or 'nothing ran'}", *(_status_line(e, names) for e in entries)]
    findings = finding_lines(entries, base)
    if findings:
        lines += ["", f"{len(findings)} finding(s):", *findings[:MAX_FINDINGS]]
        if len(findings) > MAX_FINDINGS:
            lines.append(f"… and {len(findings) - MAX_FINDINGS} more in the structured result")
    return "\n".join(lines)
