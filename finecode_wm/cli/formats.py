"""Findings in the terminal's output formats: text, GitHub annotations, JSON lines and SARIF.

Pure: every function takes the findings (`diagnostics.collect`), the directories paths are shown
against, and the run's failures and config errors, and returns text or JSON-ready data. The
front end decides where it goes. Formats follow ruff's where ruff has one, so CI set up for ruff
reads FineCode's output the same way:

- `github`: `::LEVEL title=TOOL (CODE),file=ABSOLUTE,line=…,col=…,endLine=…,endColumn=…::
  PATH:LINE:COL: CODE message`, byte for byte as `ruff check --output-format github` prints it
  (the file property absolute, so an annotation lands on its line from any directory; the
  message's path relative to the current directory; columns only for one-line ranges).
- `sarif`: SARIF 2.1.0 for GitHub code scanning, paths relative to the repository root.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from finecode_er.wire import dumps

from ..diagnostics import Finding

__all__ = ["FORMATS", "LEVELS", "SARIF_SCHEMA", "Failure", "at_least", "failing",
           "github_config_error", "github_failure", "github_lines", "json_lines", "level",
           "relativize", "sarif_log", "statistics"]

FORMATS = ("text", "github", "json-lines", "sarif")
LEVELS = ("error", "warning", "information", "hint")  # most severe first
DEFAULT_LEVEL = "warning"  # a finding that names no severity counts as a warning
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "information": "notice",
                 "hint": "notice"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "information": "note", "hint": "note"}
TOOL = "FineCode"

Found = list[tuple[Path, Finding]]
# A failed child for the formats that report failures: (project name, action, error).
Failure = tuple[str, str, str]


def level(finding: Finding) -> str:
    """The finding's severity; one that names none is a warning."""
    severity = finding.get("severity")
    return severity if severity in LEVELS else DEFAULT_LEVEL


def at_least(finding: Finding, threshold: str) -> bool:
    """Whether the finding is as severe as `threshold` (one of `LEVELS`) or more."""
    return LEVELS.index(level(finding)) <= LEVELS.index(threshold)


def failing(found: Found, threshold: str = "warning") -> list[Finding]:
    """The findings that fail a run: those as severe as `threshold` or more (by default errors
    and warnings; information and hint findings are listed but do not fail it)."""
    return [finding for _, finding in found if at_least(finding, threshold)]


def relativize(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies under it, else absolute (as ruff shows paths)."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _code(finding: Finding) -> str:
    return f"{finding['code']} " if "code" in finding else ""


# -- GitHub Actions workflow commands -------------------------------------------------------


def _data(text: str) -> str:
    """Workflow-command escaping of the message part."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Workflow-command escaping of a property value (also `:` and `,`)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level_name: str, props: Iterable[tuple[str, object]], message: str) -> str:
    shown = ",".join(f"{name}={_prop(str(value))}" for name, value in props)
    return f"::{level_name} {shown}::{_data(message)}"


def github_lines(found: Found, cwd: Path) -> list[str]:
    """One annotation per finding: `error` → `::error`, `warning` (or none) → `::warning`,
    `information` and `hint` → `::notice`. The title is the finding's `source` (the tool
    that found it, `FineCode` when it names none) and its code."""
    lines = []
    for path, f in found:
        line, end_line = f["line"], f.get("end_line")
        one_line = end_line is None or end_line == line
        tool = f.get("source", TOOL)
        props: list[tuple[str, object]] = [
            ("title", f"{tool} ({f['code']})" if "code" in f else tool),
            ("file", path), ("line", line)]
        if one_line:
            props.append(("col", f["column"]))
        if end_line is not None:
            props.append(("endLine", end_line))
        if one_line and "end_column" in f:
            props.append(("endColumn", f["end_column"]))
        message = f"{relativize(path, cwd)}:{line}:{f['column']}: {_code(f)}{f['message']}"
        lines.append(_command(_GITHUB_LEVEL[level(f)], props, message))
    return lines


def github_config_error(project: Path, error: str) -> str:
    """A broken project: an `::error` on its pyproject.toml."""
    return _command("error", [("title", f"{TOOL} (config error)"),
                              ("file", project / "pyproject.toml")], error)


def github_failure(failure: Failure) -> str:
    """A failed child: an `::error` with no file (shown in the run's summary)."""
    name, action, error = failure
    return _command("error", [("title", f"{TOOL} ({name} · {action} failed)")], error)


# -- JSON lines -----------------------------------------------------------------------------


def json_lines(found: Found) -> list[str]:
    """One JSON object per finding: the diagnostics shape with the absolute `filename` instead
    of the project-relative `path`, and `severity` always set."""
    lines = []
    for path, f in found:
        shown = {"filename": str(path), **{k: v for k, v in f.items() if k != "path"},
                 "severity": level(f)}
        lines.append(dumps(shown))
    return lines


# -- SARIF 2.1.0 ----------------------------------------------------------------------------


def _artifact(path: Path, root: Path) -> dict[str, str]:
    try:
        relative = path.relative_to(root)
    except ValueError:
        return {"uri": path.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": SRCROOT}


def _region(f: Finding) -> dict[str, int]:
    region = {"startLine": f["line"], "startColumn": f["column"]}
    if "end_line" in f:
        region["endLine"] = f["end_line"]
    if "end_column" in f:
        region["endColumn"] = f["end_column"]
    return region


def sarif_log(found: Found, *, root: Path, version: str, failures: Iterable[Failure] = (),
              config_errors: Iterable[tuple[Path, str]] = ()) -> dict[str, Any]:
    """One SARIF run: a result per finding (its code the rule), config errors and failed
    children as the invocation's notifications (which then did not succeed)."""
    codes = sorted({f["code"] for _, f in found if "code" in f})
    urls = {f["code"]: f["url"] for _, f in found if "code" in f and "url" in f}
    rules = [{"id": code, **({"helpUri": urls[code]} if code in urls else {})} for code in codes]
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for path, f in found:
        result: dict[str, Any] = {
            "level": _SARIF_LEVEL[level(f)], "message": {"text": f["message"]},
            "locations": [{"physicalLocation": {"artifactLocation": _artifact(path, root),
                                                "region": _region(f)}}]}
        if "code" in f:
            result["ruleId"], result["ruleIndex"] = f["code"], index[f["code"]]
        results.append(result)
    notifications: list[dict[str, Any]] = [
        {"level": "error", "message": {"text": error},
         "locations": [{"physicalLocation": {
             "artifactLocation": _artifact(project / "pyproject.toml", root)}}]}
        for project, error in config_errors]
    notifications += [{"level": "error", "message": {"text": f"{name} · {action}: {error}"}}
                      for name, action, error in failures]
    invocation: dict[str, Any] = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": TOOL, "version": version, "rules": rules}},
                  "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri() + "/"}},
                  "columnKind": "unicodeCodePoints",
                  "invocations": [invocation], "results": results}]}


# -- statistics -----------------------------------------------------------------------------


def statistics(found: Found) -> list[str]:
    """Counts per code, most frequent first (like `ruff check --statistics`): `count`, `code`
    (`-` for findings without one), and the most severe level among them."""
    counts = Counter(f.get("code", "-") for _, f in found)
    worst: dict[str, str] = {}
    for _, f in found:
        code = f.get("code", "-")
        if code not in worst or LEVELS.index(level(f)) < LEVELS.index(worst[code]):
            worst[code] = level(f)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    width = max((len(str(n)) for _, n in rows), default=1)
    code_width = max((len(code) for code, _ in rows), default=1)
    return [f"{n:>{width}}  {code:<{code_width}}  {worst[code]}" for code, n in rows]
