"""The terminal's findings listing: ruff-like lines, or GitHub Actions annotations for CI.

Paths are shown relative to the current directory (what a person can paste or click), grouped by
file and sorted by position. Rendering only: the findings come from `diagnostics.findings_of`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .diagnostics import Finding, FindingStore, findings_of

__all__ = ["FORMATS", "collect", "render"]

FORMATS = ("text", "github")


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


def _data(text: str) -> str:
    """Workflow-command escaping of the message part."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Workflow-command escaping of a property value (also `:` and `,`)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
