"""The Extension Runner process: runs action handlers for the projects of one environment.

Protocol (see docs/protocol.md): `initialize`, `run`, `shutdown` requests, `exit` notification,
`$/cancelRequest` both ways, and `$/progress` notifications from the runner on the tokens the
WM gave. stdout carries only JSON-RPC: handler prints, logging and child processes that write to
fd 1 all land on stderr.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from . import __version__, caching
from .api import Attached, Delegate, DelegationError, ProgressContext, RunActionContext
from .config import ActionConfig, ConfigError, load_project, parse_actions
from .handlers import Handler, HandlerLoadError, ProjectHandlers, describe_failure
from .projectcode import protect
from .reporter import ExecutionReporter, NullReporter
from .streams import read_value
from .wire import INVALID_PARAMS, Connection, RpcError, progress_sender
from .work import Composite

ACTION_FAILED = -32001
NOT_INITIALIZED = -32002


def _log(message: str) -> None:
    print(f"finecode_er[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _is_token(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class ActionFailed(Exception):
    """A handler raised, or could not be loaded; carries what a person needs to fix it."""

    def __init__(self, message: str, data: dict[str, Any]) -> None:
        super().__init__(message)
        self.data = data


class Runner:
    """Answers the WM's requests for the projects of one environment.

    Every `run` names its project (`projectRoot`, and the action's config as the WM read it), so
    one runner serves any number of projects. A runner initialized with a `projectRoot` runs that
    project when a `run` names none (the minimal protocol of a runner started for one project).
    """

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.initialized = False
        self.default_root: Path | None = None
        self.default_actions: dict[str, ActionConfig] = {}
        self._projects: dict[Path, ProjectHandlers] = {}
        self._attached: dict[str, Attached] = {}  # delegated work moving a parent's step
        self._delegations = itertools.count(1)
        self._versions = caching.VersionCache()  # handlers' declared versions, once per runner
        self.shutdown_requested = False
        self.exit_requested = asyncio.Event()

    # -- dispatch ---------------------------------------------------------------------------

    async def on_request(self, method: str, params: Any) -> Any:
        if method == "initialize":
            return self._initialize(params)
        if not self.initialized:
            raise RpcError(NOT_INITIALIZED, "the runner needs 'initialize' first")
        if method == "run":
            return await self._run(params)
        if method == "shutdown":
            self.shutdown_requested = True
            return None
        raise RpcError(-32601, f"unknown method {method!r}")

    def on_notification(self, method: str, params: Any) -> None:
        if method == "exit":
            self.exit_requested.set()
        elif method == "$/progress" and isinstance(params, dict):
            self._delegated_progress(params.get("token"), params.get("value"))

    # -- delegation -------------------------------------------------------------------------

    def _delegate(self, parent: Any) -> Delegate:
        """`ctx.run_action` of one execution: a `runAction` request to the WM."""
        async def run_action(action: str, params: dict[str, Any] | None,
                             projects: list[str] | None,
                             progress: ProgressContext | None) -> dict[str, Any]:
            assert self.conn is not None
            request: dict[str, Any] = {"parent": parent, "action": action, "params": params,
                                       "projects": projects}
            attached = progress.attach() if progress is not None else None
            token = None
            if attached is not None:
                token = f"d-{next(self._delegations)}"
                self._attached[token] = attached
                request["progressToken"] = token
            try:
                result: dict[str, Any] = await self.conn.request("runAction", request)
                return result
            except RpcError as exc:
                raise DelegationError(exc.message) from None
            finally:
                if token is not None:
                    del self._attached[token]
                if attached is not None:
                    attached.finish()

        return run_action

    def _delegated_progress(self, token: Any, value: Any) -> None:
        """`{kind: "fraction", fraction?, message?}` of a delegated batch (see docs/protocol.md):
        it moves the attached step and narrates the parent's stream."""
        attached = self._attached.get(token) if isinstance(token, str) else None
        reading = read_value(value)
        if attached is not None and reading.kind == "fraction":
            attached.update(reading.fraction, reading.message)

    # -- initialize -------------------------------------------------------------------------

    def _initialize(self, params: Any) -> dict[str, Any]:
        """Nothing of a project is imported here: a runner may start before anyone asked to run."""
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "initialize needs an object {projectRoot?: str}")
        root, actions = None, {}
        folders = params.get("workspaceFolders") or []
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise RpcError(INVALID_PARAMS, "'workspaceFolders' must be a list of path strings")
        for folder in folders:
            protect(folder)
        if params.get("projectRoot") is not None:
            root = _project_dir(params["projectRoot"], "projectRoot")
            actions = self._actions_of(root, params.get("actions"))
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            self._projects[root] = ProjectHandlers(root, resident=True)
        self.default_root, self.default_actions = root, actions
        self.initialized = True
        return {"name": "finecode_er", "version": __version__, "pid": os.getpid(),
                "actions": sorted(actions), "problems": []}

    @staticmethod
    def _actions_of(root: Path, raw: Any) -> dict[str, ActionConfig]:
        """The WM's parsed `actions` when it sent them, else the project's own pyproject.toml."""
        try:
            if raw is not None:
                return parse_actions(raw, f"{root} (from the WM)")
            project = load_project(root)
        except ConfigError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        return project.actions if project is not None else {}

    # -- run --------------------------------------------------------------------------------

    def _target(self, params: dict[str, Any], name: str) -> tuple[Path, ActionConfig]:
        """Which project runs, and the action's config (sent along, or read from the project)."""
        raw_root = params.get("projectRoot")
        if raw_root is None:
            if self.default_root is None:
                raise RpcError(INVALID_PARAMS, "run needs 'projectRoot': this runner was "
                                               "initialized without one")
            root, actions = self.default_root, self.default_actions
        else:
            root = _project_dir(raw_root, "projectRoot")
            raw_config = params.get("actionConfig")
            if raw_config is not None:
                actions = self._actions_of(root, {name: raw_config})
            elif root == self.default_root:
                actions = self.default_actions
            else:
                actions = self._actions_of(root, None)
        action = actions.get(name)
        if action is None:
            known = ", ".join(sorted(actions)) or "none"
            raise RpcError(INVALID_PARAMS,
                           f"action {name!r} is not defined in {root} (defined: {known})")
        return root, action

    async def _run(self, params: Any) -> Any:
        if not isinstance(params, dict) or not isinstance(params.get("action"), str):
            raise RpcError(INVALID_PARAMS, "run needs {action: str, projectRoot?: str, "
                                           "actionConfig?: object, params?: object, "
                                           "workDoneToken?: str|int, partialResultToken?: str|int}")
        name = params["action"]
        root, action = self._target(params, name)
        action_params = params.get("params") or {}
        if not isinstance(action_params, dict):
            raise RpcError(INVALID_PARAMS, "'params' must be an object")
        token, partial_token = params.get("workDoneToken"), params.get("partialResultToken")
        for key, value in (("workDoneToken", token), ("partialResultToken", partial_token)):
            if value is not None and not _is_token(value):
                raise RpcError(INVALID_PARAMS, f"'{key}' must be a string or an integer")
        version = params.get("codeVersion")
        handlers = self._projects.get(root)
        if handlers is None:
            handlers = self._projects[root] = ProjectHandlers(root)
        handlers.refresh(str(version) if version is not None else None)

        reporter = self._reporter(name, token, len(action.handlers))
        outcome = "cancelled"
        try:
            result, info = await self._run_handlers(name, root, action, handlers, action_params,
                                                    reporter, partial_token, token,
                                                    cache_info=params.get("cacheInfo") is True)
            outcome = "done"
            # asked by the WM's result cache: the result wrapped with what it depends on
            return result if info is None else {"result": result, "cacheInfo": info}
        except ActionFailed as exc:
            outcome = f"failed: {exc}"
            raise RpcError(ACTION_FAILED, str(exc), exc.data) from None
        finally:
            reporter.finish(outcome)

    def _reporter(self, action: str, token: Any, handlers: int) -> ExecutionReporter:
        if token is None:
            return NullReporter(handlers=handlers)
        assert self.conn is not None
        return ExecutionReporter(progress_sender(self.conn.notify, token), title=action,
                                 handlers=handlers)

    async def _run_handlers(self, name: str, root: Path, action: ActionConfig,
                            handlers: ProjectHandlers, params: dict[str, Any],
                            reporter: ExecutionReporter, partial_token: Any, token: Any, *,
                            cache_info: bool = False) -> tuple[Any, dict[str, Any] | None]:
        """The handlers' result and, when `cache_info`, what it depends on (`caching`)."""
        assert self.conn is not None
        partial = progress_sender(self.conn.notify, partial_token) \
            if partial_token is not None else None

        delegating = self._delegate(token)
        delegated = False

        async def delegate(*args: Any) -> dict[str, Any]:
            nonlocal delegated
            delegated = True
            return await delegating(*args)

        calls = []
        for spec in action.handlers:
            try:
                handler = handlers.load(spec.source)
            except HandlerLoadError as exc:
                raise ActionFailed(str(exc), {"kind": "import", "handler": spec.source}) from None
            work = reporter.handler_work()
            ctx = RunActionContext(project_root=root, config=dict(spec.config), action=name,
                                   reporter=reporter, work=work, partial=partial,
                                   delegate=delegate)
            calls.append((spec.source, handler, ctx, work))

        async def call(source: str, handler: Handler, ctx: RunActionContext,
                       work: Composite) -> Any:
            finished = False
            try:
                result = await handler(params, ctx)
                finished = True
                return result
            except (asyncio.CancelledError, ActionFailed):
                raise
            except Exception as exc:
                raise ActionFailed(
                    f"handler '{source}' failed: {describe_failure(exc)}",
                    {"kind": "handler", "handler": source, "type": type(exc).__name__,
                     "traceback": traceback.format_exception(exc)[-6:]},
                ) from exc
            finally:
                work.finish(abandoned=not finished)
                reporter.touch()

        if action.concurrent and len(calls) > 1:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(call(*c)) for c in calls]
            except* ActionFailed as failures:
                raise failures.exceptions[0] from None
            results = [task.result() for task in tasks]
        else:
            results = [await call(*c) for c in calls]
        info = None
        if cache_info:
            loaded = [(spec.source, spec.cacheable, c[1])
                      for spec, c in zip(action.handlers, calls, strict=True)]
            info = await caching.cache_info(loaded, root, delegated=delegated,
                                            versions=self._versions)
        return (results[0] if len(results) == 1 else results), info


def _project_dir(raw: Any, field: str) -> Path:
    if not isinstance(raw, str):
        raise RpcError(INVALID_PARAMS, f"'{field}' must be a path string")
    root = Path(raw).resolve()
    if not root.is_dir():
        raise RpcError(INVALID_PARAMS, f"{field} {root} is not a directory")
    return root


async def serve(stdin_fd: int, stdout_fd: int) -> int:
    """Serve the WM on two pipe descriptors until `exit` or end of input; the exit status."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(stdin_fd, "rb", buffering=0))
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol,
                                                 os.fdopen(stdout_fd, "wb", buffering=0))
    runner = Runner()
    conn = runner.conn = Connection(reader, transport, on_request=runner.on_request,
                                    on_notification=runner.on_notification, log=_log)
    reading = loop.create_task(conn.serve())
    exiting = loop.create_task(runner.exit_requested.wait())
    await asyncio.wait({reading, exiting}, return_when=asyncio.FIRST_COMPLETED)
    for task in (reading, exiting):
        task.cancel()
    # Let cancelled runs write their final progress and answers before the pipe closes.
    await asyncio.sleep(0)
    transport.close()
    return 0 if runner.shutdown_requested or not exiting.done() else 1


def _die_with_parent() -> None:
    """Linux: if the WM is killed outright, the kernel kills this runner too.

    End of stdin already stops an idle runner; this also covers a handler that blocks the loop.
    """
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _child_watcher() -> None:
    """Python 3.11 waits for every child process in a thread of its own; a pidfd needs none
    (3.12 uses one by itself). Handlers that start a tool per batch (ruff) save a millisecond or
    more a process."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))  # the kernel has pidfds (Linux 5.3+)
    except OSError:
        return
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def main() -> None:
    """Entry point of `python -m finecode_er`: keep fd 1 for the protocol, route the rest to 2."""
    import stat

    if not all(stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode)
               for fd in (0, 1)):
        sys.exit("finecode_er speaks JSON-RPC on stdin/stdout pipes and is started by "
                 "finecode-wm; see docs/protocol.md to drive it yourself")
    _die_with_parent()
    _child_watcher()
    sys.dont_write_bytecode = True  # nothing of a project's is cached into its repository
    protocol_out = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.exit(asyncio.run(serve(0, protocol_out)))
