"""The LSP surface, wired to the WM's services.

A fixed interface: editors and outside tests rely on it.

Protocol subclass, because stock pygls 2.1 `workspace/executeCommand` hides the request's
`workDoneToken` and does not cancel the command on `$/cancelRequest`. Progress values are sent as
plain dicts (`$/progress` mapped to an untyped notification): they come out of the shared state
machine already shaped as LSP values.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled
from pygls.io_ import StdinAsyncReader, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCResponseMessage,
    LanguageServerProtocol,
    lsp_method,
)

from finecode_er.pacing import Emit
from finecode_er.wire import progress_sender

from .. import __version__
from ..batch import Batch
from ..planning import BadRequest
from ..requests import RunRequest, parse_run_action, parse_run_batch
from ..results import Entry, RunResult
from ..runners.process import CANCEL_GRACE, STOP_TIMEOUT
from ..service import FineCode
from ..trust import SessionTrust
from .diagnostics import SOURCE, EditorDiagnostics

__all__ = ["build_server", "serve_stdio"]

RUN_BATCH = "runBatch"
CMD_RUN_ACTION = "finecode.runAction"
CMD_RUN_BATCH = "finecode.runBatch"
CMD_LIST_PROJECTS = "finecode.listProjects"
# The editor left without `shutdown`: cancelled batches get this long to end (a handler that
# ignores the cancel has its runner killed after the grace), the runners' stop its own bound.
WIND_DOWN = CANCEL_GRACE + 1.0


@attrs.define
class RunBatchRequest:
    """`runBatch` as pygls reads it: params stay raw JSON so we can reject them helpfully."""

    id: int | str
    params: Any
    method: str = RUN_BATCH
    jsonrpc: str = "2.0"


class FineCodeProtocol(LanguageServerProtocol):
    def get_message_type(self, method: str) -> Any:  # type: ignore[override]
        if method == RUN_BATCH:
            return RunBatchRequest
        if method in (types.PROGRESS, types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS):
            return JsonRPCNotification
        return super().get_message_type(method)

    def get_result_type(self, method: str) -> Any:  # type: ignore[override]
        """Diagnostic reports are built as plain LSP JSON (see `lsp.diagnostics`)."""
        if method in (types.WORKSPACE_DIAGNOSTIC, types.TEXT_DOCUMENT_DIAGNOSTIC):
            return JsonRPCResponseMessage
        return super().get_result_type(method)

    @lsp_method(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def lsp_work_done_progress_cancel(
            self, params: types.WorkDoneProgressCancelParams) -> None:
        """The server keeps its own tokens (`by_token`): pygls' `Progress` registry, which it
        looks the token up in (and warns on stderr when it is not there), is never used."""
        server = self._server
        assert isinstance(server, FineCodeServer)
        server.cancel_token(params.token)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(  # type: ignore[override]  # async on purpose
            self, params: types.ExecuteCommandParams) -> Any:
        server = self._server
        assert isinstance(server, FineCodeServer)
        return await server.execute_command(params)


def _uri_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


class FineCodeServer(LanguageServer):
    """pygls server holding the WM's services and the batches in flight."""

    def __init__(self, *, max_parallel: int | None = None) -> None:
        super().__init__("finecode-wm", __version__, protocol_cls=FineCodeProtocol)
        self.service = FineCode(self.log, max_parallel=max_parallel,
                             report=lambda problem: self.show_problems([problem]),
                             warn=self.show_warning)
        self.by_token: dict[Any, Batch] = {}
        self._partial_tokens: set[Any] = set()
        self._reserved: set[Any] = set()  # tokens of requests preparing their batch
        self._cancelled_early: set[Any] = set()  # of those, the ones a cancel already named
        self.running: set[asyncio.Task[Any]] = set()  # the tasks running a batch
        self.options: dict[str, Any] = {}
        self.warming: asyncio.Task[None] | None = None
        self.watching: asyncio.Task[None] | None = None
        self.trust = SessionTrust()
        self.shut_down = False  # the client asked for `shutdown`: exit code 0 (per LSP)
        self._token_ids = itertools.count(1)
        self.diagnostics = EditorDiagnostics(self, self.service)

    # -- editor-facing helpers --------------------------------------------------------------

    def log(self, message: str) -> None:
        """Runner stderr and diagnostics: `window/logMessage` at Log level (hidden by default)."""
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Log,
                                                       message=message))

    def show_problems(self, problems: list[str]) -> None:
        for problem in problems:
            self.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Error, message=f"FineCode: {problem}"))

    def show_warning(self, warning: str) -> None:
        self.window_show_message(types.ShowMessageParams(
            type=types.MessageType.Warning, message=f"FineCode: {warning}"))

    def notify(self, method: str, params: Any) -> None:
        """A notification to the client, its params as plain JSON."""
        self.protocol.notify(method, params)

    def refresh_diagnostics(self) -> None:
        """Ask the client to pull diagnostics again (`workspace/diagnostic/refresh`)."""
        self.workspace_diagnostic_refresh(None)

    def _emit_to(self, token: Any) -> Emit:
        return progress_sender(self.notify, token)

    async def _created_token(self, token: str) -> Emit | None:
        """Ask the client to accept `token`; None when it refuses (then nothing is sent)."""
        try:
            await self.window_work_done_progress_create_async(
                types.WorkDoneProgressCreateParams(token=token))
        except Exception as exc:
            self.log(f"client refused progress token {token}: {exc}")
            return None
        return self._emit_to(token)

    # -- folders ----------------------------------------------------------------------------

    async def rescan(self) -> None:
        """Discover the client's folders again, off the event loop (problems are shown once)."""
        folders = [_uri_path(f.uri) for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_uri:
            folders = [_uri_path(self.workspace.root_uri)]
        await self.service.discover(folders)
        self.diagnostics.projects_changed(set(self.service.workspace.projects))

    async def watch_configs(self) -> None:
        """Ask the client to report `pyproject.toml` changes (when it can register watchers).

        A run re-reads edited configs and re-imports edited project-local handlers anyway (they
        are compared by size and mtime); the watch adds projects that appear or disappear.
        """
        watched = self.client_capabilities.workspace and \
            self.client_capabilities.workspace.did_change_watched_files
        if not (watched and watched.dynamic_registration):
            return
        options = types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern="**/pyproject.toml")])
        try:
            await self.client_register_capability_async(types.RegistrationParams(registrations=[
                types.Registration(id="finecode-configs",
                                   method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                   register_options=options)]))
        except Exception as exc:
            self.log(f"could not register file watchers: {exc}")

    async def configs_changed(self, paths: list[Path]) -> None:
        """A project config appeared, changed or went away: discover again."""
        if any(p.name == "pyproject.toml" for p in paths):
            await self.rescan()

    def unasked_work_allowed(self) -> bool:
        """May the WM run workspace code nobody asked for (warm-up, pulls, runs on change)?

        Call it right before such work and skip the work on False: the first skip tells the
        person, once, how to trust the workspace. Before the folders were first scanned there
        is nothing to decide on: no, and nothing said.
        """
        if not self.service.discovered.is_set():
            return False
        decision = self.trust.decide(self.service.workspace)
        hint = self.trust.hint_once(decision, self.service.workspace)
        if hint is not None:
            kind = types.MessageType.Warning if decision.store_problem else types.MessageType.Info
            self.window_show_message(types.ShowMessageParams(type=kind, message=hint))
        return decision.trusted

    # -- running ----------------------------------------------------------------------------

    async def run(self, request: RunRequest, *,
                  on_entry: Callable[[Entry], None] | None = None,
                  asked: bool = True) -> dict[str, Any]:
        """Run a request to completion: one stream, results kept on cancel and failure.

        Every finished child feeds the editor's diagnostics, then `on_entry`. `asked` is false
        for work the server started by itself (a diagnostics pull).
        """
        token, partial_token = request.work_done_token, request.partial_result_token
        self._check_tokens(token, partial_token)
        reserved = {t for t in (token, partial_token) if t is not None}
        self._reserved |= reserved  # taken until the batch holds them
        try:
            return await self._run(request, token, partial_token, on_entry=on_entry, asked=asked)
        finally:
            self._reserved -= reserved
            self._cancelled_early -= reserved

    async def _run(self, request: RunRequest, token: Any, partial_token: Any, *,
                   on_entry: Callable[[Entry], None] | None,
                   asked: bool) -> dict[str, Any]:
        interrupted = False
        try:
            await self.service.prepare()
        except asyncio.CancelledError:
            # `$/cancelRequest` before the batch exists: it still begins and ends its stream,
            # cancelled, and the request is answered -32800 like any cancelled run.
            interrupted = True
        emit: Awaitable[Emit | None] | Emit | None
        key: Any = token
        if token is not None:
            emit = self._emit_to(token)
        elif self.client_capabilities.window and self.client_capabilities.window.work_done_progress:
            key = f"finecode-{os.getpid()}-{next(self._token_ids)}"
            emit = asyncio.ensure_future(self._created_token(key))
        else:
            key, emit = object(), None
        notify = self.notify
        watch = self.diagnostics.watch(request)

        def on_result(entry: Entry) -> None:
            if partial_token is not None:
                notify(types.PROGRESS, {"token": partial_token, "value": {"results": [entry]}})
            self.diagnostics.ran(entry, watch)
            if on_entry is not None:
                on_entry(entry)

        try:
            batch = self.service.batch(request, emit=emit, on_result=on_result)
        except BadRequest as exc:
            if isinstance(emit, asyncio.Future):
                emit.cancel()
            raise JsonRpcInvalidParams(str(exc)) from None
        self.by_token[key] = batch
        if partial_token is not None:
            self._partial_tokens.add(partial_token)
        if interrupted or token in self._cancelled_early:
            batch.cancel()
        task = asyncio.current_task()
        assert task is not None
        self.running.add(task)
        try:
            result = await batch.run()
            if interrupted and batch.cancelled:
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            raise JsonRpcRequestCancelled("request cancelled; finished results are in data",
                                          data=self._shape(batch.result(), partial_token)) from None
        finally:
            self.by_token.pop(key, None)
            self._partial_tokens.discard(partial_token)
            self.running.discard(task)
            if asked:
                self.diagnostics.run_finished()
        return self._shape(result, partial_token)

    def _check_tokens(self, token: Any, partial_token: Any) -> None:
        """Refuse tokens that would mix two streams on one token (InvalidParams)."""
        if token is not None and token == partial_token:
            raise JsonRpcInvalidParams(
                f"workDoneToken and partialResultToken are the same ({token!r}): progress and "
                "partial results need a token each; use two different tokens")
        for name, value in (("workDoneToken", token), ("partialResultToken", partial_token)):
            if value is not None and (value in self.by_token or value in self._partial_tokens
                                      or value in self._reserved):
                raise JsonRpcInvalidParams(f"{name} {value!r} is already in use by a running "
                                           "request; use a fresh token per request")

    async def wind_down(self) -> None:
        """The editor closed our stdin: stop as Ctrl-C does, bounded in time.

        Every batch is cancelled (handlers see `CancelledError` and their `finally` clean-up
        runs), a handler that ignores it has its runner killed after the cancel grace, then
        every runner is stopped (`shutdown`, `exit`, killed if it stays).
        """
        for batch in list(self.by_token.values()):
            batch.cancel()
        if self.running:
            await asyncio.wait(self.running, timeout=WIND_DOWN)
        try:
            await asyncio.wait_for(self.service.close(), CANCEL_GRACE + 2 * STOP_TIMEOUT + 1)
        except TimeoutError:
            pass
        finally:
            self.service.pool.kill_all()

    @staticmethod
    def _shape(result: RunResult, partial_token: Any) -> dict[str, Any]:
        """With partial results the entries were streamed: the response carries the summary
        (and the config errors, which are not entries)."""
        return {key: value for key, value in result.items()
                if partial_token is None or key != "results"}

    def cancel_token(self, token: Any) -> None:
        batch = self.by_token.get(token)
        if batch is not None:
            batch.cancel()
        elif token in self._reserved:
            self._cancelled_early.add(token)

    async def execute_command(self, params: types.ExecuteCommandParams) -> Any:
        args = params.arguments or []
        command = params.command
        if command == CMD_LIST_PROJECTS:
            await self.service.prepare()  # after a discovery in flight (e.g. the first one)
            return self.service.list_projects()
        if command not in (CMD_RUN_ACTION, CMD_RUN_BATCH):
            raise JsonRpcInvalidParams(f"unknown command {command!r} (known: {CMD_RUN_ACTION}, "
                                       f"{CMD_RUN_BATCH}, {CMD_LIST_PROJECTS})")
        if len(args) != 1:
            raise JsonRpcInvalidParams(f"{command} takes exactly one argument object")
        try:
            if command == CMD_RUN_ACTION:
                request = parse_run_action(args[0])
            else:
                if isinstance(args[0], dict) and (
                        {"workDoneToken", "partialResultToken"} & set(args[0])):
                    raise BadRequest(f"{command}: pass tokens on the executeCommand request, "
                                     "not in its argument")
                request = parse_run_batch(args[0])
        except BadRequest as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        return await self.run(dataclasses.replace(request,
                                                  work_done_token=params.work_done_token))


def build_server(*, max_parallel: int | None = None) -> FineCodeServer:
    server = FineCodeServer(max_parallel=max_parallel)

    @server.feature(types.INITIALIZE)
    def initialize(ls: FineCodeServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        ls.options = options if isinstance(options, dict) else {}
        caps = params.capabilities.workspace
        ls.diagnostics.configure(actions=ls.options.get("diagnosticActions"), can_refresh=bool(
            caps and caps.diagnostics and caps.diagnostics.refresh_support))
        trusted = ls.options.get("trusted")
        ls.trust.by_editor = trusted if isinstance(trusted, bool) else None
        limits = {key: ls.options.get(option) for key, option in
                  (("max_parallel", "maxParallel"), ("max_runners", "maxRunners"))}
        ls.service.set_limits(**{key: value for key, value in limits.items()
                                   if isinstance(value, int) and not isinstance(value, bool)
                                   and value > 0})

    @server.feature(types.INITIALIZED)
    async def initialized(ls: FineCodeServer, params: types.InitializedParams) -> None:
        await ls.rescan()
        ls.watching = asyncio.get_running_loop().create_task(ls.watch_configs())
        if (ls.options.get("warmRunners", True) is not False and ls.service.workspace.projects
                and ls.unasked_work_allowed()):
            ls.warming = asyncio.get_running_loop().create_task(ls.service.warm())

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def watched_files_changed(ls: FineCodeServer,
                                    params: types.DidChangeWatchedFilesParams) -> None:
        await ls.configs_changed([_uri_path(change.uri) for change in params.changes])

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def configuration_changed(ls: FineCodeServer,
                              params: types.DidChangeConfigurationParams) -> None:
        """Eglot and coc.nvim send this at start: `settings.finecode.diagnosticActions`, when
        given, replaces the initialization option; every other setting is read at start only."""
        settings = params.settings
        ours = settings.get("finecode") if isinstance(settings, dict) else None
        if isinstance(ours, dict) and "diagnosticActions" in ours:
            ls.diagnostics.configure(actions=ours["diagnosticActions"])

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def folders_changed(ls: FineCodeServer,
                              params: types.DidChangeWorkspaceFoldersParams) -> None:
        await ls.rescan()

    @server.feature(RUN_BATCH)
    async def run_batch(ls: FineCodeServer, params: Any) -> dict[str, Any]:
        try:
            request = parse_run_batch(params)
        except BadRequest as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        return await ls.run(request)

    @server.feature(types.TEXT_DOCUMENT_DIAGNOSTIC, types.DiagnosticOptions(
        identifier=SOURCE, inter_file_dependencies=True, workspace_diagnostics=True))
    def document_diagnostic(ls: FineCodeServer,
                            params: types.DocumentDiagnosticParams) -> dict[str, Any]:
        return ls.diagnostics.document(_uri_path(params.text_document.uri),
                                       params.previous_result_id)

    @server.feature(types.WORKSPACE_DIAGNOSTIC)
    async def workspace_diagnostic(ls: FineCodeServer,
                                   params: types.WorkspaceDiagnosticParams) -> dict[str, Any]:
        return await ls.diagnostics.workspace(params)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: FineCodeServer, params: Any) -> None:
        ls.shut_down = True
        for batch in list(ls.by_token.values()):
            batch.cancel()
        await ls.service.close()

    for name in (CMD_RUN_ACTION, CMD_RUN_BATCH, CMD_LIST_PROJECTS):
        # Registered so that initialize advertises them; FineCodeProtocol runs them.
        server.command(name)(_advertised_only)

    return server


async def _advertised_only(*_args: Any) -> None:
    raise RuntimeError("commands are dispatched by FineCodeProtocol.execute_command")


def _kill_runners(pids: list[int]) -> None:
    """The last resort after the loop ended (an `exit` without `shutdown`, a wind-down that
    could not finish): no runner may outlive the WM."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


class _StdoutWriter:
    """pygls' stdout writer, except that a client that went away loses what is written instead
    of raising into the code that wrote (a runner's stderr drain, a batch winding down)."""

    def __init__(self, stdout: BinaryIO) -> None:
        self._stdout = stdout
        self.lost = False

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stdout.close()

    def write(self, data: bytes) -> None:
        if self.lost:
            return
        try:
            self._stdout.write(data)
            self._stdout.flush()
        except (OSError, ValueError):
            self.lost = True


async def _serve(server: FineCodeServer) -> None:
    """pygls' stdio message loop, then the wind-down once the editor closes our stdin.

    pygls' own `start_io` ends at end of input by cancelling every task at once, which left
    the runners to be killed before any handler could clean up.
    """
    server.protocol.set_writer(_StdoutWriter(sys.stdout.buffer))
    try:
        await run_async(stop_event=threading.Event(),
                        reader=StdinAsyncReader(sys.stdin.buffer, server.thread_pool),
                        protocol=server.protocol, logger=logging.getLogger("pygls.server"),
                        error_handler=server.report_server_error)
    finally:
        await server.wind_down()


class _AnswersAreNoFaults(logging.Filter):
    """pygls logs a traceback for every error a request handler raises. InvalidParams and
    RequestCancelled are answers the client gets for its own input or its own cancel: an
    editor's output panel must not fill with tracebacks for them. Real faults still log."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, JsonRpcInvalidParams | JsonRpcRequestCancelled)


def serve_stdio(*, max_parallel: int | None = None) -> int:
    """`finecode-wm lsp`: serve the editor on stdio; exit code per LSP (0 after shutdown)."""
    logging.getLogger("pygls").setLevel(logging.WARNING)
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_AnswersAreNoFaults())
    server = build_server(max_parallel=max_parallel)
    try:
        asyncio.run(_serve(server))
    except (KeyboardInterrupt, SystemExit):  # `exit` ends the loop with SystemExit
        pass
    finally:
        server.shutdown()  # type: ignore[no-untyped-call]  # its thread pool
    _kill_runners(server.service.pool.pids())
    if not server.shut_down:  # LSP's exit code for it; said, for a person who typed the command
        print("finecode-wm lsp: the client closed the connection without a shutdown request "
              "(exit code 1, as LSP asks)", file=sys.stderr)
    return 0 if server.shut_down else 1

