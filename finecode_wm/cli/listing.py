"""The terminal's listing of findings: ruff-like lines, or GitHub Actions annotations for CI.

Paths are shown relative to the current directory, grouped by file and sorted by position.
Rendering only: the findings come from `diagnostics.collect`. Which findings fail a run
(`failing`) is the terminal's exit code policy.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..diagnostics import Finding, text_lines
from ..results import ConfigError

__all__ = ["FORMATS", "config_error_annotations", "failing", "render"]

FORMATS = ("text", "github")
NOT_FAILING = ("information", "hint")  # severities that are listed but do not fail a run


def failing(found: list[tuple[Path, Finding]]) -> list[Finding]:
    """The findings that fail a run: all but those of severity information and hint."""
    return [finding for _, finding in found if finding.get("severity") not in NOT_FAILING]


def render(found: list[tuple[Path, Finding]], output_format: str, cwd: Path) -> list[str]:
    """The lines to print for `found` in `output_format` (one of `FORMATS`)."""
    if output_format != "github":
        return text_lines(found, cwd)
    return [_github(os.path.relpath(path, cwd), finding) for path, finding in found]


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


def config_error_annotations(errors: list[ConfigError], cwd: Path) -> list[str]:
    """One `::error` annotation per config error, on the project's pyproject.toml."""
    return [f"::error file={_prop(os.path.relpath(Path(e['project']) / 'pyproject.toml', cwd))},"
            f"title=FineCode config error::{_data(e['error'])}" for e in errors]


def _data(text: str) -> str:
    """Workflow-command escaping of the message part."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Workflow-command escaping of a property value (also `:` and `,`)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


