"""Findings in the editor, end to end: push after runs, and `workspace/diagnostic` pulls.

Each test works in a fresh copy of a three-project workspace whose project-local `lint` reports
every line holding the marker, counts its runs in `runs.log`, and fails on a `BOOM` line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types

from .lsp_client import CONFIG, RecordingClient, init_params
from .rules import check_stream

pytestmark = pytest.mark.timeout(60)

MARK = "FIX" + "ME"
CHECKS = f'''
async def lint(params, ctx):
    root = ctx.project_root
    with open(root / "runs.log", "a") as log:
        log.write("run\\n")
    found = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "BO" + "OM" in line:
                raise RuntimeError("lint broke on " + path.name)
            if "{MARK[:3]}" + "{MARK[3:]}" in line:
                found.append({{"path": path.relative_to(root).as_posix(), "line": number,
                              "column": line.index("{MARK[:3]}") + 1, "code": "X1",
                              "message": "left a marker", "severity": "warning"}})
    return {{"diagnostics": found}}
'''
PYPROJECT = '[tool.finecode.actions.lint]\nhandlers = [{ source = "checks:lint" }]\n'


def make_workspace(root: Path, *, broken: bool = False) -> Path:
    """p1: one finding; p2: two findings in two files; p3: clean (or failing when `broken`)."""
    files = {"p1": {"a.py": f"x = 1\ny = 2  # {MARK}\n"},
             "p2": {"b.py": f"# {MARK}\n", "pkg/c.py": f"\n\n    z = 3  # {MARK}\n"},
             "p3": {"d.py": "BO" + "OM = 1\n" if broken else "ok = 1\n"}}
    for project, sources in files.items():
        (root / project).mkdir(parents=True)
        (root / project / "pyproject.toml").write_text(PYPROJECT)
        (root / project / "checks.py").write_text(CHECKS)
        for name, text in sources.items():
            (root / project / name).parent.mkdir(parents=True, exist_ok=True)
            (root / project / name).write_text(text)
    return root


def runs(ws: Path, project: str) -> int:
    log = ws / project / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def uri(ws: Path, relative: str) -> str:
    return (ws / relative).as_uri()


async def pull(client: RecordingClient, previous: dict[str, str] | None = None,
               partial: str | None = None) -> types.WorkspaceDiagnosticReport:
    if partial is not None:
        client.values.setdefault(partial, [])
    return await client.workspace_diagnostic_async(types.WorkspaceDiagnosticParams(
        previous_result_ids=[types.PreviousResultId(uri=u, value=v)
                             for u, v in (previous or {}).items()],
        partial_result_token=partial))


def streamed(client: RecordingClient, partial: str) -> dict[str, dict[str, Any]]:
    """The reports streamed on a partial-result token, by document URI."""
    return {report["uri"]: report for value in client.values[partial]
            for report in value["items"]}


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: RecordingClient, tmp_path: Path) -> AsyncIterator[None]:
    lsp_client.ws = make_workspace(tmp_path / "ws", broken=True)  # type: ignore[attr-defined]
    params = init_params(root=lsp_client.ws, warm=False,  # type: ignore[attr-defined]
                         trusted=True)
    params.capabilities.workspace = types.WorkspaceClientCapabilities(
        diagnostics=types.DiagnosticWorkspaceClientCapabilities(refresh_support=True))
    lsp_client.init_result = await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


async def test_push_after_a_run_then_cleared_when_fixed_or_removed(
        client: RecordingClient) -> None:
    ws: Path = client.ws  # type: ignore[attr-defined]
    result = await client.protocol.send_request_async(
        "runBatch", {"actions": ["lint"], "projects": [str(ws / "p1"), str(ws / "p2")]})
    assert result.summary.ok == 2
    pushed = client.diagnostics
    assert set(pushed) == {uri(ws, "p1/a.py"), uri(ws, "p2/b.py"), uri(ws, "p2/pkg/c.py")}
    (finding,) = pushed[uri(ws, "p2/pkg/c.py")]
    assert (finding.range.start.line, finding.range.start.character) == (2, 13)  # 0-based
    assert finding.source == "finecode" and finding.code == "X1"
    assert finding.severity == types.DiagnosticSeverity.Warning

    (ws / "p2" / "b.py").write_text("# fixed\n")
    await client.protocol.send_request_async("runBatch", {"actions": ["lint"],
                                                          "projects": [str(ws / "p2")]})
    assert list(pushed[uri(ws, "p2/b.py")]) == [], "a fixed file is cleared"
    assert len(pushed[uri(ws, "p2/pkg/c.py")]) == 1
    assert len(pushed[uri(ws, "p1/a.py")]) == 1, "other projects keep their findings"

    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
        event=types.WorkspaceFoldersChangeEvent(
            added=[], removed=[types.WorkspaceFolder(uri=ws.as_uri(), name=ws.name)])))
    for _ in range(100):
        if not pushed[uri(ws, "p1/a.py")]:
            break
        await asyncio.sleep(0.02)
    assert not pushed[uri(ws, "p1/a.py")] and not pushed[uri(ws, "p2/pkg/c.py")], \
        "a project removed from the workspace clears its files"


async def test_pull_runs_once_then_answers_unchanged_and_reruns_only_what_changed(
        client: RecordingClient) -> None:
    ws: Path = client.ws  # type: ignore[attr-defined]
    caps = client.init_result.capabilities.diagnostic_provider
    assert caps.workspace_diagnostics is True and caps.inter_file_dependencies is True

    # 0. an explicit run pushes, and its findings count as p1's latest lint
    await client.protocol.send_request_async("runBatch", {"actions": ["lint"],
                                                          "projects": [str(ws / "p1")]})
    created = list(client.created)
    assert len(client.diagnostics[uri(ws, "p1/a.py")]) == 1

    # 1. first pull: one batch (p1 is up to date), one server-created progress stream, reports
    #    streamed; from now on this client pulls, so what was pushed is cleared
    first = await pull(client, partial="p1")
    assert not client.diagnostics[uri(ws, "p1/a.py")], "pushed findings are taken back"
    assert not first.items, "with partial results the response carries no items"
    assert len(client.created) == len(created) + 1
    check_stream(client.values[client.created[-1]])
    reports = streamed(client, "p1")
    assert {u for u, r in reports.items() if r["kind"] == "full" and r["items"]} == {
        uri(ws, "p1/a.py"), uri(ws, "p2/b.py"), uri(ws, "p2/pkg/c.py")}
    assert reports[uri(ws, "p1/a.py")]["items"][0]["range"]["start"] == {"line": 1,
                                                                         "character": 9}
    assert (runs(ws, "p1"), runs(ws, "p2"), runs(ws, "p3")) == (1, 1, 1)
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1 and "p3" in errors[0] and "lint broke" in errors[0], errors
    previous = {u: r["resultId"] for u, r in reports.items()}

    # 2. nothing changed: every document unchanged, no handler ran, no progress
    second = await pull(client, previous, partial="p2")
    again = streamed(client, "p2")
    assert not second.items and set(again) == set(previous)
    assert {r["kind"] for r in again.values()} == {"unchanged"}
    assert (runs(ws, "p1"), runs(ws, "p2"), runs(ws, "p3")) == (1, 1, 1)
    assert len(client.created) == len(created) + 1, "nothing ran, so no progress stream"
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1, "a failing project's error is shown once"

    # 3. a changed file re-runs only its project; only its document changes
    (ws / "p2" / "b.py").write_text(f"# {MARK}\n# {MARK} again\n")
    third = await pull(client, previous)  # no partial token: the response has the reports
    assert (runs(ws, "p1"), runs(ws, "p2"), runs(ws, "p3")) == (1, 2, 1)
    by_uri = {r.uri: r for r in third.items}
    assert isinstance(by_uri[uri(ws, "p2/b.py")], types.WorkspaceFullDocumentDiagnosticReport)
    assert len(by_uri[uri(ws, "p2/b.py")].items) == 2
    assert all(isinstance(by_uri[u], types.WorkspaceUnchangedDocumentDiagnosticReport)
               for u in (uri(ws, "p1/a.py"), uri(ws, "p2/pkg/c.py")))

    # 4. a document pull answers from the same results, never by running
    doc = types.TextDocumentIdentifier(uri=uri(ws, "p1/a.py"))
    full = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=doc))
    assert isinstance(full, types.RelatedFullDocumentDiagnosticReport) and len(full.items) == 1
    same = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=doc, previous_result_id=full.result_id))
    assert isinstance(same, types.RelatedUnchangedDocumentDiagnosticReport)
    assert runs(ws, "p1") == 1

    # 5. a client that pulls gets no pushes (one channel, no duplicates), but a refresh
    assert client.diagnostic_refresh_count == 0
    await client.protocol.send_request_async("runBatch", {"actions": ["lint"],
                                                          "projects": [str(ws / "p1")]})
    assert not any(client.diagnostics.values())
    for _ in range(100):
        if client.diagnostic_refresh_count:
            break
        await asyncio.sleep(0.02)
    assert client.diagnostic_refresh_count == 1

    # 6. the re-pull it asks for is answered from the store: the run recorded p1's inputs
    latest = {r.uri: r.result_id for r in third.items}
    fourth = await pull(client, latest)
    assert {type(r) for r in fourth.items} == {types.WorkspaceUnchangedDocumentDiagnosticReport}
    assert (runs(ws, "p1"), runs(ws, "p2"), runs(ws, "p3")) == (2, 2, 1)


@pytest_lsp.fixture(config=CONFIG)
async def untrusted(lsp_client: RecordingClient, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    lsp_client.ws = make_workspace(tmp_path / "ws")  # type: ignore[attr-defined]
    await lsp_client.initialize_session(init_params(root=lsp_client.ws))  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_an_untrusted_workspace_is_never_pulled(untrusted: RecordingClient) -> None:
    """Pulls are work nobody asked for: answered at once, empty, and the person told once."""
    ws: Path = untrusted.ws  # type: ignore[attr-defined]
    for _ in range(2):
        report = await pull(untrusted)
        assert list(report.items) == []
    await asyncio.sleep(0.2)
    assert runs(ws, "p1") == runs(ws, "p2") == 0, "no handler ran"
    told = [m.message for m in untrusted.messages if "finecode-wm trust" in m.message]
    assert len(told) == 1, untrusted.messages
    explicit = await untrusted.protocol.send_request_async(
        "runBatch", {"actions": ["lint"], "projects": [str(ws / "p1")]})
    assert explicit.summary.ok == 1 and runs(ws, "p1") == 1, "an explicit run is consent"
