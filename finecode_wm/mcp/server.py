"""The MCP front end (`finecode-wm mcp`): agents run actions over the WM's one service.

Built on the official `mcp` SDK's low-level `Server` (stdio, newline-delimited JSON-RPC): the
tools' schemas are written out here, and the arguments are checked by the same parser as
`runBatch`, so a bad call gets a tool error (`isError`) that says what to fix. A run is a
`Batch` of the shared `FineCode` service; its aggregated stream becomes `notifications/progress`
through `ProgressMapping` when the call carries a progress token.

Cancellation: the SDK cancels the handler's task on `notifications/cancelled` (and when the
connection closes). The batch runs in a task of its own, so that cancel reaches it exactly once,
through `Batch.cancel()`, the path the LSP server and Ctrl-C use: every child is cancelled, a
handler that ignores it has its runner killed after the grace period, and `close()` waits for
the batch before stopping every runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from finecode_er.streams import Value

from .. import __version__
from ..diagnostics import RunFindings, text_lines
from ..planning import BadRequest
from ..requests import RunRequest, parse_run_batch
from ..results import STATUSES, Entry, RunResult, counts_text, shorten, shown_status
from ..service import FineCode
from .progress import Progress, ProgressMapping

__all__ = ["LIST_PROJECTS", "RUN_ACTIONS", "McpFrontEnd", "serve_stdio"]

LIST_PROJECTS = "list_projects"
RUN_ACTIONS = "run_actions"
MAX_FINDINGS = 200  # listed in the text; the structured result has them all
MAX_TEXT = 20_000  # characters of findings in an agent's text (all are in the structured result)
MAX_LINE = 1_000  # characters of one finding there
CLOSE_WAIT = 5.0  # a cancelled batch's runners get the 2 s grace, then are killed; then stop
_RUN_KEYS = {"actions", "projects", "params", "options"}

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_ENTRY = {
    "type": "object",
    "properties": {
        "project": {"type": "string", "description": "absolute path of the project"},
        "action": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "cached": {"type": "boolean",
                   "description": "true when the result came from the result cache"},
        "seconds": {"type": "number"},
        "result": {"description": "the action's result; `diagnostics` lists findings"},
        "error": {"type": "string"},
        "errorData": {},
    },
    "required": ["project", "action", "status"],
}
_SUMMARY = {
    "type": "object",
    "properties": {s: {"type": "integer", "minimum": 0} for s in STATUSES},
    "required": list(STATUSES),
}
_CONFIG_ERROR = {
    "type": "object",
    "properties": {"project": {"type": "string", "description": "absolute path of the project"},
                   "error": {"type": "string"}},
    "required": ["project", "error"],
}
_PROJECT = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "name": {"type": "string"}, "actions": _STRINGS},
    "required": ["path", "name", "actions"],
}
TOOLS = [
    types.Tool(
        name=LIST_PROJECTS,
        title="List FineCode projects",
        description="The workspace's FineCode projects: path, name and the actions each defines."
                    " Projects whose config is broken are listed under `problems`;"
                    " pyproject.toml files that cannot be read and do not mention FineCode"
                    " under `skipped`.",
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        output_schema={
            "type": "object",
            "properties": {"projects": {"type": "array", "items": _PROJECT},
                           "problems": {"type": "array", "items": {"type": "string"}},
                           "skipped": {"type": "array", "items": {"type": "string"}}},
            "required": ["projects", "problems"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name=RUN_ACTIONS,
        title="Run FineCode actions",
        description="Run actions (lint, format, test, …) in the workspace's projects, all of them"
                    " by default. Every action runs in every selected project that defines it."
                    " The text lists config errors first (selected projects whose config is"
                    " broken, or whose handler does not import), then each run's status and the"
                    " findings as `path:line:column: code message`.",
        input_schema={
            "type": "object",
            "properties": {
                "actions": {**_STRINGS, "minItems": 1,
                            "description": "action names, e.g. [\"lint\"]"},
                "projects": {**_STRINGS, "description": "project directories: absolute, or "
                                                        "relative to the workspace root"},
                "params": {"type": "object", "description": "passed to every handler"},
                "options": {
                    "type": "object",
                    "description": "as runBatch's: cache (false: run everything, do not reuse "
                                   "cached results), concurrent, stopOnFailure, timeout",
                    "properties": {"cache": {"type": "boolean"},
                                   "concurrent": {"type": "boolean"},
                                   "stopOnFailure": {"type": "boolean"},
                                   "timeout": {"type": "number", "exclusiveMinimum": 0}},
                    "additionalProperties": False,
                },
            },
            "required": ["actions"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {"results": {"type": "array", "items": _ENTRY}, "summary": _SUMMARY,
                           "config_errors": {"type": "array", "items": _CONFIG_ERROR,
                                             "description": "present when not empty"}},
            "required": ["results", "summary"],
        },
    ),
]


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _stderr(message: str) -> None:
    """Diagnostics go to stderr: stdout is the protocol, and clients keep stderr as a log."""
    print(f"finecode-wm: {message}", file=sys.stderr, flush=True)


class _Notifier:
    """Sends a call's progress notifications, in order, off the batch's synchronous `emit`.

    The stream is paced where it is made, but a write can lag behind it (stdout is written from
    a worker thread, and a flood of child values keeps the loop busy): newest state wins, so a
    slow transport gets the latest value instead of a burst of stale ones. Dropping values of a
    strictly increasing sequence keeps it strictly increasing, and the last one is always sent.
    """

    def __init__(self, ctx: ServerRequestContext[Any], token: str | int) -> None:
        self._ctx = ctx
        self._token = token
        self.mapping = ProgressMapping()
        self._pending: Progress | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self.task = asyncio.get_running_loop().create_task(self._send_all())

    def __call__(self, value: Value) -> None:
        progress = self.mapping.map(value)
        if progress is not None:
            self._pending = progress
            self._wake.set()

    async def _send_all(self) -> None:
        """Until drained; a transport that fails loses the progress, never the result."""
        related = None if self._ctx.request_id is None else str(self._ctx.request_id)
        try:
            while self._pending is not None or not self._closing:
                if self._pending is None:
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                item, self._pending = self._pending, None
                await self._ctx.session.send_progress_notification(
                    self._token, item.progress, item.total, item.message,
                    related_request_id=related)
        except Exception as exc:
            _stderr(f"progress notifications stopped: {exc}")

    async def drain(self) -> None:
        """Every notification so far is sent (the result must come after the last one)."""
        self._closing = True
        self._wake.set()
        await self.task


class McpFrontEnd:
    """The MCP tools over one `FineCode` service for one workspace folder."""

    def __init__(self, workspace: Path, *, max_parallel: int | None = None) -> None:
        self.root = workspace.resolve()
        self.service = FineCode(_stderr, max_parallel=max_parallel,
                             report=lambda problem: _stderr(f"config error: {problem}"),
                             warn=lambda warning: _stderr(f"warning: {warning}"))
        self.server: Server[Any] = Server("finecode-wm", version=__version__,
                                          on_list_tools=self._list_tools,
                                          on_call_tool=self._call_tool)
        self._running: set[asyncio.Task[RunResult]] = set()

    # -- tools ------------------------------------------------------------------------------

    async def _list_tools(self, ctx: ServerRequestContext[Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def _call_tool(self, ctx: ServerRequestContext[Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        if params.name == LIST_PROJECTS:
            await self.discover()
            return self._list_projects()
        if params.name == RUN_ACTIONS:
            try:
                request = self._parse(arguments)
            except BadRequest as exc:
                return _error(f"{RUN_ACTIONS}: {exc}")
            token = (params.meta or {}).get("progress_token")
            return await self._run(ctx, request, token)
        return _error(f"unknown tool {params.name!r} (tools: {LIST_PROJECTS}, {RUN_ACTIONS})")

    async def discover(self) -> None:
        """The workspace as it is now, off the event loop: nothing tells this server of new or
        changed projects, so every call looks (unchanged files are not read again)."""
        await self.service.discover([self.root])

    def _list_projects(self) -> types.CallToolResult:
        workspace = self.service.workspace
        projects = self.service.list_projects()
        problems = [f"{path}: {problem}" for path, problem in sorted(workspace.problems.items())]
        skipped = [workspace.skipped[path] for path in sorted(workspace.skipped)]
        lines = [f"{p.name}  {p.root}  [{', '.join(sorted(p.actions)) or '-'}]"
                 for p in sorted(workspace.projects.values(), key=lambda p: p.root)]
        text = "\n".join(lines or ["no FineCode projects in " + str(self.root)])
        if problems:
            text += "\nconfig problems:\n" + "\n".join(problems)
        if skipped:
            text += "\nskipped (not readable, no mention of FineCode):\n" + "\n".join(skipped)
        return types.CallToolResult(content=[types.TextContent(text=text)],
                                    structured_content={"projects": projects,
                                                        "problems": problems,
                                                        "skipped": skipped})

    def _parse(self, arguments: Any) -> RunRequest:
        """`{actions, projects?, params?, options?}`; relative projects are taken from the
        workspace root."""
        if isinstance(arguments, dict):
            unknown = sorted(set(arguments) - _RUN_KEYS)
            if unknown:
                raise BadRequest(f"unknown argument(s) {', '.join(unknown)} "
                                 f"(allowed: {', '.join(sorted(_RUN_KEYS))})")
        request = parse_run_batch(arguments)
        if request.projects is None:
            return request
        return dataclasses.replace(request, projects=[str(self.root / p) for p in request.projects])

    async def _run(self, ctx: ServerRequestContext[Any], request: RunRequest,
                   token: str | int | None) -> types.CallToolResult:
        await self.service.prepare(rediscover=True)
        notifier = _Notifier(ctx, token) if token is not None else None
        try:
            batch = self.service.batch(request, emit=notifier)
        except BadRequest as exc:
            if notifier is not None:
                notifier.task.cancel()
            return _error(f"{RUN_ACTIONS}: {exc}")
        running = asyncio.get_running_loop().create_task(batch.run())
        self._running.add(running)
        running.add_done_callback(self._running.discard)
        try:
            # Shielded on purpose: the SDK cancels this handler through an anyio cancel scope,
            # which cancels every await inside it again until it exits; the batch winds down in
            # its own task instead (its runners answer, or get the grace kill).
            result = await asyncio.shield(running)
            if notifier is not None:
                await notifier.drain()
        except BaseException:
            # No response and no more progress follow a cancel (or a failure); the batch winds
            # down by itself.
            batch.cancel()
            if notifier is not None:
                notifier.task.cancel()
            raise
        return self._shape(result)

    def _shape(self, result: RunResult) -> types.CallToolResult:
        names = {str(p.root): p.name for p in self.service.workspace.projects.values()}
        text = summary_text(result, names=names, base=self.root)
        return types.CallToolResult(content=[types.TextContent(text=text)],
                                    structured_content=result)

    # -- lifetime ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Let cancelled batches finish (their runners get the grace), then stop every runner."""
        if self._running:
            await asyncio.wait(self._running, timeout=CLOSE_WAIT)
        await self.service.close()

    async def serve(self) -> None:
        """Serve until stdin closes; runners never outlive the server.

        Discovery starts beside serving (config problems go to stderr as they are found): a
        slow or hostile workspace never delays the handshake, and every call discovers anyway.
        """
        startup = asyncio.get_running_loop().create_task(self.discover())
        try:
            async with stdio_server() as (read_stream, write_stream):
                await self.server.run(read_stream, write_stream,
                                      self.server.create_initialization_options())
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(Exception):
                    await startup
                await self.close()


def serve_stdio(workspace: Path, *, max_parallel: int | None = None) -> int:
    """`finecode-wm mcp`: serve one workspace folder to an MCP client on stdio."""
    front = McpFrontEnd(workspace, max_parallel=max_parallel)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(front.serve())
    return 0


def _status_line(entry: Entry, names: dict[str, str]) -> str:
    name = names.get(entry["project"], entry["project"])
    line = f"{shown_status(entry):<9} {name} · {entry['action']}"
    if entry.get("error"):
        line += ": " + shorten(str(entry["error"]), 200)
    return line


def summary_text(result: RunResult, *, names: dict[str, str], base: Path) -> str:
    """The summary counts, one line per child execution, then the findings (at most a few)."""
    entries = result["results"]
    counts = counts_text((e["status"] for e in entries),
                         sum(bool(e.get("cached")) for e in entries))
    lines = []
    errors = result.get("config_errors", [])
    if errors:  # first: nothing else in the result covers these projects
        lines += [*(f"config error: {os.path.relpath(e['project'], base)}: {e['error']}"
                    for e in errors), ""]
    lines += [f"FineCode: {counts or 'nothing ran'}", *(_status_line(e, names) for e in entries)]
    found = RunFindings(entries)
    findings = text_lines(found.listed, base)
    lines += found.outside_notes(names)
    if findings:
        lines += ["", f"{len(findings)} finding(s):"]
        budget = MAX_TEXT
        for shown, finding in enumerate(findings):
            line = finding if len(finding) <= MAX_LINE else finding[:MAX_LINE - 1] + "…"
            budget -= len(line) + 1
            if shown == MAX_FINDINGS or budget < 0:
                lines.append(f"… and {len(findings) - shown} more finding(s) in the structured "
                             "result")
                break
            lines.append(line)
    return "\n".join(lines)
