"""Findings in the editor: pushed after runs, pulled with `workspace/diagnostic`.

One channel per client, so no finding is shown twice (VS Code keeps pushed and pulled
diagnostics in separate collections and would list both): a client that pulls workspace
diagnostics gets everything through pulls, and after an explicit run only a
`workspace/diagnostic/refresh`; any other client (Neovim's push handling) gets
`textDocument/publishDiagnostics`. Document pulls (`textDocument/diagnostic`) are answered from
the same store, never by running anything.

The re-pull loop (VS Code pulls again about every 2 s): a pull re-runs only projects whose
inputs (`diagnostics.inputs_of`) changed since their last diagnostics run; everything else is
answered at once from the store, and a file whose findings did not change comes back
`unchanged` against its `previousResultId`. Requests are never held open.

Values are plain LSP JSON (the protocol maps these methods to untyped responses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from .diagnostics import EMPTY_ID, Finding, FindingStore, findings_of, inputs_of
from .requests import RunRequest
from .workspace import Project

if TYPE_CHECKING:
    from .server import FineCodeServer

__all__ = ["DEFAULT_ACTIONS", "SOURCE", "EditorDiagnostics", "to_lsp"]

SOURCE = "finecode"
DEFAULT_ACTIONS = ("lint",)
_SEVERITY = {"error": 1, "warning": 2, "information": 3, "hint": 4}
Report = dict[str, Any]


def to_lsp(finding: Finding) -> dict[str, Any]:
    """A finding (1-based, end optional) as an LSP `Diagnostic` (0-based)."""
    line, column = finding["line"] - 1, finding["column"] - 1
    end_line = (finding.get("end_line") or finding["line"]) - 1
    end_column = (finding.get("end_column") or finding["column"]) - 1
    if (end_line, end_column) < (line, column):
        end_line, end_column = line, column
    diagnostic: dict[str, Any] = {
        "range": {"start": {"line": line, "character": column},
                  "end": {"line": end_line, "character": end_column}},
        "severity": _SEVERITY[finding.get("severity", "warning")],
        "source": SOURCE, "message": finding["message"]}
    if "code" in finding:
        diagnostic["code"] = finding["code"]
    if "url" in finding:
        diagnostic["codeDescription"] = {"href": finding["url"]}
    return diagnostic


class EditorDiagnostics:
    """The server's findings store and its push and pull sides."""

    def __init__(self, server: FineCodeServer) -> None:
        self.server = server
        self.store = FindingStore()
        self.pulling = False  # the client pulls workspace diagnostics: no pushes
        self._lock = asyncio.Lock()

    @property
    def actions(self) -> list[str]:
        """The diagnostics actions (`initializationOptions.diagnosticActions`)."""
        configured = self.server.options.get("diagnosticActions")
        if isinstance(configured, list) and configured and all(
                isinstance(a, str) and a for a in configured):
            return configured
        return list(DEFAULT_ACTIONS)

    # -- push -------------------------------------------------------------------------------

    def ran(self, entry: dict[str, Any]) -> None:
        """A child of any run finished: keep its findings and push the files they changed."""
        by_file = findings_of(entry)
        if by_file is None:
            return
        touched = self.store.record(Path(entry["project"]), entry["action"], by_file)
        if not self.pulling:
            self._publish(touched)

    def run_finished(self) -> None:
        """After an explicit run a pulling client is asked to pull again (when it can)."""
        caps = self.server.client_capabilities.workspace
        if self.pulling and caps and caps.diagnostics and caps.diagnostics.refresh_support:
            self.server.workspace_diagnostic_refresh(None)

    def _publish(self, files: set[Path]) -> None:
        notify = self.server.protocol.notify
        for path in sorted(files):
            notify(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, {
                "uri": path.as_uri(), "diagnostics": [to_lsp(f) for f in self.store.items(path)]})

    def projects_changed(self, projects: set[Path]) -> None:
        """Projects gone from the workspace: their files are cleared (`[]`)."""
        for project in self.store.projects() - projects:
            gone = self.store.drop_project(project)
            if not self.pulling:
                self._publish(gone)

    # -- pull -------------------------------------------------------------------------------

    def _report(self, path: Path, previous: str | None) -> Report:
        items = self.store.items(path)
        rid = self.store.result_id(path)
        if previous == rid:
            return {"kind": "unchanged", "resultId": rid}
        return {"kind": "full", "resultId": rid, "items": [to_lsp(f) for f in items]}

    def _project_reports(self, project: Path, previous: dict[str, str]) -> list[Report]:
        reports = []
        for path in sorted(self.store.files(project)):
            uri = path.as_uri()
            reports.append({"uri": uri, "version": None, **self._report(path, previous.get(uri))})
        return reports

    def document(self, path: Path, previous_result_id: str | None) -> Report:
        """`textDocument/diagnostic`: the document's cached findings, never a run."""
        if not self.server.unasked_work_allowed():
            return {"kind": "full", "items": []}
        return self._report(path, previous_result_id)

    async def workspace(self, params: types.WorkspaceDiagnosticParams) -> Report:
        """`workspace/diagnostic`: run what changed as one batch, answer the rest from the store.

        With a `partialResultToken` every project's reports are streamed as it is ready and the
        response carries no items (LSP partial-result rule); without one, the response has them.
        """
        self.pulling = True
        if not self.server.unasked_work_allowed():
            return {"items": []}
        previous = {p.uri: p.value for p in params.previous_result_ids}
        partial = params.partial_result_token
        collected: list[Report] = []

        def deliver(reports: list[Report]) -> None:
            if not reports:
                return
            if partial is None:
                collected.extend(reports)
            else:
                self.server.protocol.notify(types.PROGRESS,
                                            {"token": partial, "value": {"items": reports}})

        async with self._lock:
            actions = self.actions
            projects = sorted((p for p in self.server.fine.workspace.projects.values()
                               if any(a in p.actions for a in actions)), key=lambda p: p.root)
            inputs = {p.root: inputs_of(p) for p in projects}
            stale = [p for p in projects if not self.store.unchanged(p.root, inputs[p.root])]
            for project in projects:
                if project not in stale:
                    deliver(self._project_reports(project.root, previous))
            if stale:
                await self._run(stale, actions, inputs, params.work_done_token,
                                lambda root: deliver(self._project_reports(root, previous)))
            deliver(self._orphans(previous))
        return {"items": collected}

    async def _run(self, stale: list[Project], actions: list[str], inputs: Mapping[Path, object],
                   token: Any, ready: Callable[[Path], None]) -> None:
        """One batch over the stale projects; each project is reported once all its actions are
        done. A failed project is shown once and not retried until its inputs change."""
        pending = {p.root: sum(a in p.actions for a in actions) for p in stale}
        interrupted: set[Path] = set()

        def on_entry(entry: dict[str, Any]) -> None:
            root = Path(entry["project"])
            if entry["status"] == "failed":
                first = str(entry.get("error", "")).split("\n", 1)[0]
                self.server.show_problems([f"{entry['action']} failed in {root.name}: {first}"])
            elif entry["status"] == "cancelled":
                interrupted.add(root)
            pending[root] -= 1
            if pending[root] == 0:
                if root not in interrupted:
                    self.store.ran_on(root, inputs[root])
                ready(root)

        wanted = [a for a in actions if any(a in p.actions for p in stale)]
        request = RunRequest(actions=wanted, projects=[str(p.root) for p in stale],
                             work_done_token=token)
        await self.server.run(request, on_entry=on_entry, asked=False)

    def _orphans(self, previous: dict[str, str]) -> list[Report]:
        """Files the client still shows that no project reports on (a project was removed,
        or the server restarted): cleared."""
        known = {path.as_uri() for project in self.store.projects()
                 for path in self.store.files(project)}
        return [{"uri": uri, "version": None, "kind": "full", "resultId": EMPTY_ID, "items": []}
                for uri, rid in sorted(previous.items()) if rid != EMPTY_ID and uri not in known]
