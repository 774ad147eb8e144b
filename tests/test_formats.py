"""The output formats of findings (pure): GitHub annotations, JSON lines, SARIF 2.1.0 (checked
against the official schema), statistics, and the word-boundary cut of error details."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm.cli.formats import (
    LEVELS,
    at_least,
    github_config_error,
    github_failure,
    github_lines,
    json_lines,
    level,
    sarif_log,
    statistics,
)
from finecode_wm.mcp.server import summary_text
from finecode_wm.results import shorten

pytestmark = pytest.mark.timeout(30)

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "schemas" /
                     "sarif-2.1.0-rtm.5.json").read_text())
ROOT = Path("/repo")


def finding(line: int = 3, column: int = 5, **extra: Any) -> dict[str, Any]:
    return {"path": "a.py", "line": line, "column": column, "message": "m", **extra}


def test_github_levels_title_and_ranges() -> None:
    path = ROOT / "pkg" / "a.py"
    found = [(path, finding(severity="error", code="E1", source="ruff", end_line=3,
                            end_column=9)),
             (path, finding(4, 1, severity="information", end_line=6, end_column=2)),
             (path, finding(7, 2, severity="hint", code="H")),
             (path, finding(8, 2, code="W"))]
    assert github_lines(found, ROOT / "pkg") == [
        "::error title=ruff (E1),file=/repo/pkg/a.py,line=3,col=5,endLine=3,endColumn=9::"
        "a.py:3:5: E1 m",
        "::notice title=FineCode,file=/repo/pkg/a.py,line=4,endLine=6::a.py:4:1: m",
        "::notice title=FineCode (H),file=/repo/pkg/a.py,line=7,col=2::a.py:7:2: H m",
        "::warning title=FineCode (W),file=/repo/pkg/a.py,line=8,col=2::a.py:8:2: W m"]
    elsewhere = github_lines(found[:1], Path("/other"))
    assert elsewhere[0].endswith("::/repo/pkg/a.py:3:5: E1 m"), "outside the cwd: absolute"


def test_github_failures_and_config_errors_are_errors() -> None:
    assert github_config_error(ROOT / "libs" / "core", "bad, key: x\nmore") == (
        "::error title=FineCode (config error),file=/repo/libs/core/pyproject.toml::"
        "bad, key: x%0Amore")
    assert github_failure(("core", "lint", "RuntimeError: 100% broken")) == (
        "::error title=FineCode (core · lint failed)::RuntimeError: 100%25 broken")


def test_levels_and_threshold() -> None:
    assert level(finding()) == "warning" and level(finding(severity="bogus")) == "warning"
    assert [at_least(finding(severity=s), "warning") for s in LEVELS] == [
        True, True, False, False]
    assert all(at_least(finding(severity=s), "hint") for s in LEVELS)
    assert [at_least(finding(severity=s), "error") for s in LEVELS] == [True, False, False, False]


def test_json_lines_one_object_per_finding() -> None:
    lines = json_lines([(ROOT / "a.py", finding(code="X")), (ROOT / "b.py", finding())])
    first, second = map(json.loads, lines)
    assert first == {"filename": "/repo/a.py", "line": 3, "column": 5, "message": "m",
                     "code": "X", "severity": "warning"}
    assert second["filename"] == "/repo/b.py" and "path" not in second


def test_statistics_count_per_code_most_frequent_first() -> None:
    found = [(ROOT / "a.py", finding(code="F401")), (ROOT / "b.py", finding(code="F401")),
             (ROOT / "b.py", finding(code="F821", severity="error")),
             (ROOT / "c.py", finding(code="F401", severity="error")),
             (ROOT / "c.py", finding())]
    assert statistics(found) == ["3  F401  error", "1  -     warning", "1  F821  error"]
    assert statistics([]) == []


def test_shorten_cuts_at_a_word() -> None:
    text = "cannot import handler 'my_checks:run': ModuleNotFoundError: No module named x"
    cut = shorten(text, 40)
    assert cut == "cannot import handler 'my_checks:run'…" and len(cut) <= 40
    assert shorten("first line\nsecond", 100) == "first line"
    assert shorten("x" * 50, 10) == "x" * 9 + "…", "one long word is cut inside"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(2, 120))
def test_shorten_never_exceeds_the_limit_and_keeps_a_prefix(text: str, limit: int) -> None:
    cut = shorten(text, limit)
    first = text.strip().split("\n", 1)[0].rstrip()
    assert len(cut) <= limit
    assert cut == first or (cut.endswith("…") and first.startswith(cut[:-1]))


def test_sarif_validates_against_the_schema_with_findings_failures_and_config_errors() -> None:
    found = [(ROOT / "libs" / "my dir" / "a.py", finding(code="F401", end_line=3, end_column=9,
                                                         url="https://x/F401")),
             (ROOT / "b.py", finding(severity="hint")),
             (Path("/elsewhere/c.py"), finding(code="E1", severity="error"))]
    log = sarif_log(found, root=ROOT, version="0.1.0",
                    failures=[("core", "lint", "RuntimeError: boom")],
                    config_errors=[(ROOT / "libs" / "core", "unknown key(s) x")])
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    (run,) = log["runs"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["E1", "F401"]
    first, second, third = run["results"]
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "libs/my%20dir/a.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 9}
    assert first["ruleId"] == "F401" and first["level"] == "warning"
    assert second["level"] == "note" and "ruleId" not in second
    assert third["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "file:///elsewhere/c.py"}
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert [n["message"]["text"] for n in invocation["toolExecutionNotifications"]] == [
        "unknown key(s) x", "core · lint: RuntimeError: boom"]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == "file:///repo/"


def test_sarif_of_a_clean_run_validates() -> None:
    log = sarif_log([], root=ROOT, version="0.1.0")
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["runs"][0]["invocations"] == [{"executionSuccessful": True}]


def test_agents_text_is_capped_and_says_how_many_were_left_out() -> None:
    many = [finding(n, message="x" * 5000) for n in range(1, 400)]
    entry = {"project": "/ws/p", "action": "lint", "status": "ok",
             "result": {"diagnostics": many}}
    text = summary_text({"results": [entry], "summary": {"ok": 1, "failed": 0, "cancelled": 0}},
                        names={"/ws/p": "p"}, base=Path("/ws"))
    assert len(text) < 25_000
    assert "399 finding(s):" in text
    shown = sum(line.startswith("p/a.py:") for line in text.splitlines())
    assert 0 < shown < 399
    assert text.endswith(f"… and {399 - shown} more finding(s) in the structured result")
