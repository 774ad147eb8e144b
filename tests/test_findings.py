"""The pure parts of findings: the fixed shape, the per-file store, listings and LSP ranges."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_wm.cli.formats import github_lines
from finecode_wm.diagnostics import (
    MAX_POSITION,
    FindingStore,
    RunFindings,
    findings_of,
    normalize,
    relative_to,
    text_lines,
)
from finecode_wm.lsp.diagnostics import to_lsp

pytestmark = pytest.mark.timeout(60)  # hypothesis runs many examples; a loaded CI machine is slow

ROOT = Path("/ws/proj")


def entry(*results: Any, status: str = "ok", action: str = "lint") -> dict[str, Any]:
    result = results[0] if len(results) == 1 else list(results)
    return {"project": str(ROOT), "action": action, "status": status, "result": result}


def finding(path: str, line: int, **extra: Any) -> dict[str, Any]:
    return {"path": path, "line": line, "column": 1, "message": "m", **extra}


def test_normalize_keeps_the_shape_and_drops_what_is_unusable() -> None:
    assert normalize(finding("a.py", 2, code="X", severity="error", end_line=2, end_column=4,
                             extra="dropped"), ROOT) == {
        "path": "a.py", "line": 2, "column": 1, "message": "m", "code": "X",
        "severity": "error", "end_line": 2, "end_column": 4}
    assert normalize(finding("a.py", 0), ROOT) is None, "lines are 1-based"
    assert normalize({"file": "a.py", "line": 1, "column": 1, "message": "m"}, ROOT) is None
    assert normalize(finding("a.py", 1, severity="fatal"), ROOT) == finding("a.py", 1)


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
    found = RunFindings([entry({"diagnostics": [
        finding("z.py", 1, message="50% done, a:b\nnext", code="E1", severity="error"),
        finding("a.py", 7, code="W2")]})]).listed
    assert text_lines(found, ROOT) == ["a.py:7:1: W2 m", "z.py:1:1: E1 50% done, a:b\nnext"]
    assert github_lines(found, ROOT.parent) == [
        "::warning title=FineCode (W2),file=/ws/proj/a.py,line=7,col=1::proj/a.py:7:1: W2 m",
        "::error title=FineCode (E1),file=/ws/proj/z.py,line=1,col=1::"
        "proj/z.py:1:1: E1 50%25 done, a:b%0Anext"]


def test_lsp_ranges_are_zero_based_and_never_inverted() -> None:
    diagnostic = to_lsp(finding("a.py", 3, end_line=3, end_column=6, url="https://x/E1"))
    assert diagnostic["range"] == {"start": {"line": 2, "character": 0},
                                   "end": {"line": 2, "character": 5}}
    assert diagnostic["severity"] == 2 and diagnostic["codeDescription"] == {"href": "https://x/E1"}
    assert to_lsp(finding("a.py", 3, end_line=1))["range"]["end"] == {"line": 2, "character": 0}


# -- positions and paths are bounded --------------------------------------------------------

# A project with a symlink out of it and one that stays inside, beside a file outside it.
_BASE = Path(tempfile.mkdtemp(prefix="finecode-findings-")).resolve()
PROJECT = _BASE / "ws" / "proj"
(PROJECT / "pkg").mkdir(parents=True)
(PROJECT / "link").symlink_to(_BASE)
(PROJECT / "inner").symlink_to(PROJECT / "pkg")
(PROJECT / "loop").symlink_to(PROJECT / "loop")

segments = st.sampled_from(["..", ".", "pkg", "link", "inner", "loop", "x.py", "ws", "proj",
                            "/", "", "a\x00b", "//", "~"])
paths = st.one_of(st.lists(segments, min_size=1, max_size=6).map("/".join),
                  st.text(max_size=12), st.sampled_from(["/etc/hosts", str(PROJECT / "x.py"),
                                                         str(_BASE / "x.py")]))
positions = st.one_of(st.integers(-3, 3), st.integers(2**31 - 3, 2**31 + 3),
                      st.integers(min_value=0), st.booleans(), st.none(), st.floats(),
                      st.text(max_size=3))
raw_findings = st.one_of(
    st.fixed_dictionaries({"path": paths, "line": positions, "column": positions,
                           "message": st.text(max_size=5)},
                          optional={"end_line": positions, "end_column": positions,
                                    "severity": st.text(max_size=8), "code": st.text(max_size=3)}),
    st.none(), st.integers(), st.lists(st.integers(), max_size=2))


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(PROJECT) and os.path.normpath(path).startswith(
        str(PROJECT))


@settings(max_examples=400, deadline=None)
@given(raw_findings)
def test_normalize_never_raises_nor_yields_a_finding_outside_or_out_of_range(raw: Any) -> None:
    finding = normalize(raw, PROJECT)
    if finding is None:
        return
    for key in ("line", "column", "end_line", "end_column"):
        if key in finding:
            assert 1 <= finding[key] <= MAX_POSITION
    assert _inside(PROJECT / finding["path"]), finding["path"]


@settings(max_examples=200, deadline=None)
@given(st.lists(raw_findings, max_size=8))
def test_findings_of_keeps_what_is_inside_and_counts_what_is_not(raws: list[Any]) -> None:
    by_file = findings_of({"project": str(PROJECT), "action": "lint", "status": "ok",
                           "result": {"diagnostics": raws}})
    assert by_file is not None
    kept = [normalize(raw, PROJECT) for raw in raws]
    assert sum(len(found) for found in by_file.values()) == sum(f is not None for f in kept)
    for path in by_file:
        assert _inside(path)


def test_far_positions_are_clamped_and_outside_files_dropped_with_a_note() -> None:
    result = {"diagnostics": [
        finding("pkg/a.py", 10**30, column=2**40, end_line=10**40),
        finding("/etc/hosts", 1), finding("../../escape.py", 1), finding("link/x.py", 1),
        finding("inner/b.py", 2), finding(str(PROJECT / "c.py"), 3)]}
    entry = {"project": str(PROJECT), "action": "lint", "status": "ok", "result": result}
    by_file = findings_of(entry)
    assert by_file is not None and by_file.outside == 3
    assert sorted(by_file) == [PROJECT / "c.py", PROJECT / "inner" / "b.py",
                               PROJECT / "pkg" / "a.py"]
    (far,) = by_file[PROJECT / "pkg" / "a.py"]
    assert (far["line"], far["column"], far["end_line"]) == (MAX_POSITION,) * 3
    assert to_lsp(far)["range"]["start"] == {"line": MAX_POSITION - 1,
                                             "character": MAX_POSITION - 1}
    assert RunFindings([entry]).outside_notes({str(PROJECT): "proj"}) == [
        "proj · lint: dropped 3 finding(s) for files outside the project (a finding's path "
        "must be inside its project)"]


# -- one run's findings, worked out once ----------------------------------------------------

NESTED = PROJECT / "pkg"
run_entries = st.lists(st.fixed_dictionaries({
    "project": st.sampled_from([str(PROJECT), str(NESTED)]),
    "action": st.sampled_from(["lint", "format"]),
    "status": st.sampled_from(["ok", "ok", "failed"]),
    "result": st.one_of(st.fixed_dictionaries({"diagnostics": st.lists(raw_findings,
                                                                       max_size=5)}),
                        st.none(), st.just({"files": 2}))}), max_size=6)


@settings(max_examples=200, deadline=None)
@given(run_entries)
def test_run_findings_match_each_entry_taken_alone(entries: list[dict[str, Any]]) -> None:
    """The listing, each count and the notes are those of `findings_of` per entry (the paths
    located once per root, not once per entry, change nothing)."""
    findings = RunFindings(entries)
    store = FindingStore()
    alone = [findings_of(e) for e in entries]
    for e, by_file in zip(entries, alone, strict=True):
        if by_file is not None:
            store.record(Path(e["project"]), e["action"], by_file)
    files = sorted({p for root in store.projects() for p in store.files(root)}, key=str)
    assert findings.listed == [(path, f) for path in files for f in store.items(path)]
    counts = [None if b is None else sum(map(len, b.values())) for b in alone]
    assert [findings.count(i) for i in range(len(entries))] == counts
    assert findings.reported() == sum(c or 0 for c in counts)
    names = {str(PROJECT): "proj"}
    assert findings.outside_notes(names) == [
        f"{names.get(e['project'], e['project'])} · {e['action']}: dropped {b.outside} "
        "finding(s) for files outside the project (a finding's path must be inside its project)"
        for e, b in zip(entries, alone, strict=True) if b is not None and b.outside]


def test_run_findings_list_a_finding_two_actions_reported_once() -> None:
    same = {"diagnostics": [finding("a.py", 1, code="E1")]}
    findings = RunFindings([entry(same), entry(same, action="format"),
                            entry(None, status="failed")])
    assert [f["code"] for _, f in findings.listed] == ["E1"]
    assert [findings.count(i) for i in range(3)] == [1, 1, None]
    assert findings.reported() == 2


@given(st.lists(st.sampled_from(["a", "b", "ab", ".x", "é", "a b"]), max_size=4),
       st.lists(st.sampled_from(["a", "b", "ab", ".x", "é", "a b"]), max_size=4))
def test_relative_to_is_relpath_for_normalized_absolute_paths(base: list[str],
                                                              under: list[str]) -> None:
    """The listing's fast path says what `os.path.relpath` says, inside the base or not."""
    root = Path("/", *base)
    for path in (root.joinpath(*under), Path("/", *under), root):
        assert relative_to(path, root) == os.path.relpath(path, root)
