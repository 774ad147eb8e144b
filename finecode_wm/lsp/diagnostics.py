"""Findings in the editor: pushed after runs, pulled with `workspace/diagnostic`.

One channel per client, so no finding is shown twice (VS Code and Neovim keep pushed and pulled
diagnostics apart and would list both): once a client that can be asked to re-pull
(`workspace.diagnostics.refreshSupport`) pulls workspace diagnostics, it gets everything through
pulls (what was pushed before is cleared with `[]`), and after an explicit run only a
`workspace/diagnostic/refresh`; until then, and for every other client, runs push
`textDocument/publishDiagnostics`.
Document pulls (`textDocument/diagnostic`) are answered from the same store, never by running
anything.

The re-pull loop (VS Code pulls again about every 2 s): a pull re-runs only projects whose
inputs (`diagnostics.inputs_of`) changed since their last diagnostics run; everything else is
answered at once from the store, and a file whose findings did not change comes back
`unchanged` against its `previousResultId`. Requests are never held open.

Values are plain LSP JSON (the protocol maps these methods to untyped responses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lsprotocol import types

from ..diagnostics import EMPTY_ID, Finding, FindingStore, findings_of, inputs_of, outside_note
from ..requests import RunRequest
from ..results import Entry, import_failure
from ..service import FineCode
from ..workspace import Project

__all__ = ["DEFAULT_ACTIONS", "SOURCE", "Editor", "EditorDiagnostics", "to_lsp"]

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


class Editor(Protocol):
    """What the diagnostics need of the language server: its client, its trust policy, and its
    way of running a request (one stream on the client's tokens)."""

    def notify(self, method: str, params: Any) -> None: ...

    def log(self, message: str) -> None: ...

    def show_problems(self, problems: list[str]) -> None: ...

    def refresh_diagnostics(self) -> None: ...

    def unasked_work_allowed(self) -> bool: ...

    async def run(self, request: RunRequest, *,
                  on_entry: Callable[[Entry], None] | None = None,
                  asked: bool = True) -> dict[str, Any]: ...


class EditorDiagnostics:
    """The server's findings store and its push and pull sides."""

    def __init__(self, editor: Editor, service: FineCode) -> None:
        self.editor = editor
        self.service = service
        self.store = FindingStore()
        self.pulling = False  # the client pulls workspace diagnostics (and can re-pull): no pushes
        self._lock = asyncio.Lock()
        self._results: dict[tuple[str, str], Any] = {}  # the result last recorded per child
        self._configured: Any = None  # `diagnosticActions` as the client gave it
        self._can_refresh = False  # the client can be asked to pull again

    def configure(self, *, actions: Any, can_refresh: bool | None = None) -> None:
        """The client's `diagnosticActions` (at start, or from `didChangeConfiguration`) and,
        at start, whether it can be asked to pull again
        (`workspace.diagnostics.refreshSupport`)."""
        self._configured = actions
        if can_refresh is not None:
            self._can_refresh = can_refresh

    @property
    def actions(self) -> list[str]:
        """The diagnostics actions (`initializationOptions.diagnosticActions`)."""
        configured = self._configured
        if isinstance(configured, list) and configured and all(
                isinstance(a, str) and a for a in configured):
            return configured
        return list(DEFAULT_ACTIONS)

    def watch(self, request: RunRequest) -> RunWatch:
        """Before a run: what the selected projects' inputs are, for those it fully re-lints."""
        projects = self.service.workspace.projects
        if request.projects is None:
            selected = list(projects.values())
        else:
            selected = [projects[p] for p in {_resolved(raw) for raw in request.projects}
                        if p in projects]
        actions = self.actions
        covered = [p for p in selected if any(a in p.actions for a in actions)
                   and all(a in request.actions for a in actions if a in p.actions)]
        return RunWatch(self.store, covered, actions)

    # -- push -------------------------------------------------------------------------------

    def ran(self, entry: Entry, watch: RunWatch) -> None:
        """A child of any run finished: keep its findings and push the files they changed.

        A result equal to the one last recorded for that child (a cached one, say) changes
        nothing and is not read again."""
        watch.finished(entry)
        key, result = (entry["project"], entry["action"]), entry.get("result")
        if entry["status"] == "ok" and key in self._results and self._results[key] == result:
            return
        by_file = findings_of(entry)
        if by_file is None:
            return
        self._results[key] = result
        if by_file.outside:
            project = self.service.workspace.projects.get(Path(entry["project"]))
            self.editor.log(outside_note(project.name if project else entry["project"],
                                         entry["action"], by_file.outside))
        touched = self.store.record(Path(entry["project"]), entry["action"], by_file)
        if not self.pulling:
            self._publish(touched)

    def run_finished(self) -> None:
        """After an explicit run a pulling client is asked to pull again."""
        if self.pulling:
            self.editor.refresh_diagnostics()

    def _publish(self, files: set[Path], *, clear: bool = False) -> None:
        notify = self.editor.notify
        for path in sorted(files):
            items = [] if clear else [to_lsp(f) for f in self.store.items(path)]
            notify(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
                   {"uri": path.as_uri(), "diagnostics": items})

    def projects_changed(self, projects: set[Path]) -> None:
        """Projects gone from the workspace: their files are cleared (`[]`)."""
        for project in self.store.projects() - projects:
            for key in [key for key in self._results if key[0] == str(project)]:
                del self._results[key]
            gone = self.store.drop_project(project)
            if not self.pulling:
                self._publish(gone)  # `[]`, unless a remaining (outer) project reports on them

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
        if not self.editor.unasked_work_allowed():
            return {"kind": "full", "items": []}
        return self._report(path, previous_result_id)

    async def workspace(self, params: types.WorkspaceDiagnosticParams) -> Report:
        """`workspace/diagnostic`: run what changed as one batch, answer the rest from the store.

        With a `partialResultToken` every project's reports are streamed as it is ready and the
        response carries no items (LSP partial-result rule); without one, the response has them.
        """
        await self.service.prepare()  # after the first scan; configs edited since re-read
        if not self.editor.unasked_work_allowed():
            # Nothing runs unasked; explicit runs keep reaching the client by push meanwhile.
            self.pulling = False
            return {"items": []}
        if not self.pulling and self._can_refresh:
            self.pulling = True  # from now on pulls only: what was pushed is taken back
            self._publish({path for project in self.store.projects()
                           for path in self.store.files(project)}, clear=True)
        previous = {p.uri: p.value for p in params.previous_result_ids}
        partial = params.partial_result_token
        collected: list[Report] = []

        def deliver(reports: list[Report]) -> None:
            if not reports:
                return
            if partial is None:
                collected.extend(reports)
            else:
                self.editor.notify(types.PROGRESS, {"token": partial, "value": {"items": reports}})

        async with self._lock:
            await self.service.prepare()
            actions = self.actions
            projects = sorted((p for p in self.service.workspace.projects.values()
                               if any(a in p.actions for a in actions)), key=lambda p: p.root)
            # A walk and a stat per file: off the event loop, which keeps serving meanwhile.
            inputs = await asyncio.to_thread(lambda: {p.root: inputs_of(p) for p in projects})
            stale = [p for p in projects if not self.store.unchanged(p.root, inputs[p.root])]
            deliver([report for project in projects if project not in stale
                     for report in self._project_reports(project.root, previous)])
            if stale:
                await self._run(stale, actions, params.work_done_token,
                                lambda root: deliver(self._project_reports(root, previous)))
            deliver(self._orphans(previous))
        return {"items": collected}

    async def _run(self, stale: list[Project], actions: list[str], token: Any,
                   ready: Callable[[Path], None]) -> None:
        """One batch over the stale projects; each project is reported once all its actions are
        done. A failed project is shown once and not retried until its inputs change (the
        run's `RunWatch` records them)."""
        countdown = Countdown(stale, actions)
        names = {p.root: p.name for p in stale}

        def on_entry(entry: Entry) -> None:
            root = Path(entry["project"])
            # A handler that does not import is reported once, as a config problem.
            if entry["status"] == "failed" and not import_failure(entry):
                first = entry.get("error", "").split("\n", 1)[0]
                self.editor.show_problems([f"{entry['action']} failed in {names[root]}: {first}"])
            if countdown.finished(entry):
                ready(root)

        wanted = [a for a in actions if any(a in p.actions for p in stale)]
        request = RunRequest(actions=wanted, projects=[str(p.root) for p in stale],
                             work_done_token=token)
        await self.editor.run(request, on_entry=on_entry, asked=False)

    def _orphans(self, previous: dict[str, str]) -> list[Report]:
        """Files the client still shows that no project reports on (a project was removed,
        or the server restarted): cleared."""
        known = {path.as_uri() for project in self.store.projects()
                 for path in self.store.files(project)}
        return [{"uri": uri, "version": None, "kind": "full", "resultId": EMPTY_ID, "items": []}
                for uri, rid in sorted(previous.items()) if rid != EMPTY_ID and uri not in known]


def _resolved(raw: str) -> Path:
    try:
        return Path(raw).resolve()
    except (OSError, ValueError):
        return Path(raw)


class Countdown:
    """Which projects of a run have finished all their diagnostics actions."""

    def __init__(self, projects: list[Project], actions: list[str]) -> None:
        self._left = {p.root: sum(a in p.actions for a in actions) for p in projects}
        self._actions = set(actions)

    def finished(self, entry: Entry) -> bool:
        """Count `entry` down; True when it was its project's last diagnostics action."""
        root = Path(entry["project"])
        if root not in self._left or entry["action"] not in self._actions:
            return False
        self._left[root] -= 1
        return self._left[root] == 0


class RunWatch:
    """Records a project's inputs (taken before the run) once the run re-linted it completely,
    so the next pull answers from the store instead of running it again. A cancelled action
    leaves the project to be run by the next pull."""

    def __init__(self, store: FindingStore, projects: list[Project], actions: list[str]) -> None:
        self._store = store
        self._inputs = {p.root: inputs_of(p) for p in projects}
        self._countdown = Countdown(projects, actions)
        self._cancelled: set[Path] = set()

    def finished(self, entry: Entry) -> None:
        root = Path(entry["project"])
        if entry["status"] == "cancelled":
            self._cancelled.add(root)
        if self._countdown.finished(entry) and root not in self._cancelled:
            self._store.ran_on(root, self._inputs[root])
