"""The pure parts of findings: the fixed shape, the per-file store, listings and LSP ranges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finecode_wm.diagnostics import FindingStore, findings_of, normalize
from finecode_wm.findings import collect, render
from finecode_wm.lsp_diagnostics import to_lsp

pytestmark = pytest.mark.timeout(10)

ROOT = Path("/ws/proj")


def entry(*results: Any, status: str = "ok", action: str = "lint") -> dict[str, Any]:
    result = results[0] if len(results) == 1 else list(results)
    return {"project": str(ROOT), "action": action, "status": status, "result": result}


def finding(path: str, line: int, **extra: Any) -> dict[str, Any]:
    return {"path": path, "line": line, "column": 1, "message": "m", **extra}


def test_normalize_keeps_the_shape_and_drops_what_is_unusable() -> None:
    assert normalize(finding("a.py", 2, code="X", severity="error", end_line=2, end_column=4,
                             extra="dropped")) == {
        "path": "a.py", "line": 2, "column": 1, "message": "m", "code": "X",
        "severity": "error", "end_line": 2, "end_column": 4}
    assert normalize(finding("a.py", 0)) is None, "lines are 1-based"
    assert normalize({"file": "a.py", "line": 1, "column": 1, "message": "m"}) is None
    assert normalize(finding("a.py", 1, severity="fatal")) == finding("a.py", 1)


def test_findings_of_several_handlers_and_of_failures() -> None:
    both = findings_of(entry({"diagnostics": [finding("b.py", 3)]},
                             {"diagnostics": [finding("a.py", 9), finding("a.py", 1)]}))
    assert both is not None
    assert {p: [f["line"] for f in fs] for p, fs in both.items()} == {
        ROOT / "a.py": [1, 9], ROOT / "b.py": [3]}
    assert findings_of(entry({"files": 3})) is None, "no diagnostics key: says nothing"
    assert findings_of(entry(None, status="failed")) is None
    assert findings_of(entry({"diagnostics": []})) == {}, "an empty list clears"


def test_store_unions_actions_and_clears_what_is_gone() -> None:
    store = FindingStore()
    a = ROOT / "a.py"
    store.record(ROOT, "lint", {a: [finding("a.py", 2)]})
    store.record(ROOT, "types", {a: [finding("a.py", 1, code="T")]})
    assert [f["line"] for f in store.items(a)] == [1, 2]
    first = store.result_id(a)
    assert store.record(ROOT, "lint", {}) == {a}, "a file lint no longer reports is touched"
    assert [f["line"] for f in store.items(a)] == [1] and store.result_id(a) != first
    store.record(ROOT, "lint", {a: [finding("a.py", 2)]})
    assert store.result_id(a) == first, "same findings, same result id"
    nested = ROOT / "inner"
    store.record(nested, "lint", {a: [finding("../a.py", 2)]})
    assert [f["line"] for f in store.items(a)] == [1, 2], "the same finding twice is shown once"
    assert store.drop_project(ROOT) == {a} and store.items(a) == [finding("../a.py", 2)]
    assert store.drop_project(nested) == {a} and store.items(a) == []


def test_text_and_github_listings() -> None:
    found = collect([entry({"diagnostics": [
        finding("z.py", 1, message="50% done, a:b\nnext", code="E1", severity="error"),
        finding("a.py", 7, code="W2")]})])
    assert render(found, "text", ROOT) == ["a.py:7:1: W2 m", "z.py:1:1: E1 50% done, a:b\nnext"]
    assert render(found, "github", ROOT.parent) == [
        "::warning file=proj/a.py,line=7,col=1,title=W2::m",
        "::error file=proj/z.py,line=1,col=1,title=E1::50%25 done, a:b%0Anext"]


def test_lsp_ranges_are_zero_based_and_never_inverted() -> None:
    diagnostic = to_lsp(finding("a.py", 3, end_line=3, end_column=6, url="https://x/E1"))
    assert diagnostic["range"] == {"start": {"line": 2, "character": 0},
                                   "end": {"line": 2, "character": 5}}
    assert diagnostic["severity"] == 2 and diagnostic["codeDescription"] == {"href": "https://x/E1"}
    assert to_lsp(finding("a.py", 3, end_line=1))["range"]["end"] == {"line": 2, "character": 0}
