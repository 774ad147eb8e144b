"""`finecode-wm mcp` as an agent sees it: the SDK's own client over stdio, real runners."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import mcp_types as types
import psutil
import pytest
import pytest_asyncio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from .conftest import WORKSPACE, probe_env
from .rules import gone

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

ALPHA, BETA = str(WORKSPACE / "alpha"), str(WORKSPACE / "beta")
Seen = list[tuple[float, float | None, str | None]]


def _devnull() -> TextIO:
    """Where the server's stderr goes (config problems of the fixture workspace are expected)."""
    return open(os.devnull, "w")


class McpServer:
    """A `finecode-wm mcp` subprocess and a `ClientSession` on it.

    The SDK's transports are anyio task groups, which must be left by the task that entered
    them: one task owns the connection for its whole life and tests use the session from theirs.
    """

    def __init__(self, workspace: Path = WORKSPACE, env: dict[str, str] | None = None) -> None:
        self.workspace = workspace
        self.env = env or probe_env()
        self.session: ClientSession | None = None
        self.notifications: list[types.ProgressNotificationParams] = []
        self.pid = 0
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._own())

    async def _record(self, message: Any) -> None:
        if isinstance(message, types.ProgressNotification):
            self.notifications.append(message.params)

    async def _own(self) -> None:
        before = {p.pid for p in psutil.Process().children()}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "finecode_wm", "mcp", "--workspace",
                                          str(self.workspace)], env=self.env)
        try:
            with _devnull() as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(
                        read, write, message_handler=self._record) as session:
                    await session.initialize()
                    (self.pid,) = {p.pid for p in psutil.Process().children()} - before
                    self.session = session
                    self._ready.set_result(None)
                    await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    async def start(self) -> ClientSession:
        await asyncio.wait_for(self._ready, 20)
        assert self.session is not None
        return self.session

    def runners(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return [p for p in psutil.Process(self.pid).children(recursive=True)
                    if "finecode_er" in " ".join(p.cmdline())]
        return []

    async def close(self) -> None:
        """Leave the client: stdin closes, and the server must take every runner with it."""
        self._stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 20)


async def wait_until(check: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return bool(check())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[McpServer]:
    server = McpServer()
    await server.start()
    yield server
    await server.close()


async def call(server: McpServer, arguments: dict[str, Any], seen: Seen | None = None,
               ) -> types.CallToolResult:
    async def progress(value: float, total: float | None, message: str | None) -> None:
        assert seen is not None
        seen.append((value, total, message))

    assert server.session is not None
    return await server.session.call_tool("run_actions", arguments,
                                          progress_callback=progress if seen is not None else None)


def text(result: types.CallToolResult) -> str:
    (content,) = result.content
    assert isinstance(content, types.TextContent)
    return content.text


def strictly_increasing(seen: Seen) -> list[float]:
    values = [value for value, _total, _message in seen]
    assert values, "no progress notification"
    assert all(a < b for a, b in itertools.pairwise(values)), values
    return values


async def test_tools_are_listed_with_input_and_output_schemas(server: McpServer) -> None:
    assert server.session is not None
    tools = {t.name: t for t in (await server.session.list_tools()).tools}
    assert set(tools) == {"list_projects", "run_actions"}
    run = tools["run_actions"]
    assert run.input_schema["required"] == ["actions"]
    assert set(run.input_schema["properties"]) == {"actions", "projects", "params", "options"}
    assert run.output_schema is not None
    assert run.output_schema["required"] == ["results", "summary"]
    assert tools["list_projects"].output_schema is not None
    listed = await server.session.call_tool("list_projects", {})
    assert not listed.is_error
    structured = listed.structured_content
    assert [p["name"] for p in structured["projects"]] == ["alpha", "beta"]
    assert "count" in structured["projects"][0]["actions"]
    assert any("colour" in problem for problem in structured["problems"])
    assert "alpha" in text(listed) and "beta" in text(listed)


async def test_two_projects_progress_strictly_increases_to_total(server: McpServer) -> None:
    seen: Seen = []
    result = await call(server, {"actions": ["count"], "projects": ["alpha", BETA]}, seen)
    assert not result.is_error
    assert result.structured_content["summary"] == {"ok": 2, "failed": 0, "cancelled": 0}
    assert [(r["project"], r["status"], r["result"]) for r in result.structured_content[
        "results"]] == [(ALPHA, "ok", {"counted": 5}), (BETA, "ok", {"counted": 15})]
    values = strictly_increasing(seen)
    assert {total for _value, total, _message in seen} == {100}
    assert values[-1] == 100 and values.count(100) == 1, "total only at the end"
    assert seen[-1][2] == "2 ok"
    assert any("count · beta: item" in (message or "") for _v, _t, message in seen), seen
    assert "ok        alpha · count" in text(result)


async def test_indeterminate_run_counts_without_total(server: McpServer) -> None:
    seen: Seen = []
    result = await call(server, {"actions": ["untotalled"], "projects": ["alpha"]}, seen)
    assert result.structured_content["summary"]["ok"] == 1
    strictly_increasing(seen)
    assert all(total is None for _value, total, _message in seen), seen
    assert seen[-1][2] == "1 ok"


async def test_a_failing_child_is_reported_and_the_others_kept(server: McpServer) -> None:
    seen: Seen = []
    result = await call(server, {"actions": ["boom"]}, seen)
    assert not result.is_error, "a failed child is a result, not a tool error"
    entries = {r["project"]: r for r in result.structured_content["results"]}
    assert entries[ALPHA]["status"] == "failed"
    assert "ValueError: the widget is broken" in entries[ALPHA]["error"]
    assert entries[BETA]["status"] == "ok" and entries[BETA]["result"] == {"counted": 5}
    assert "failed    alpha · boom:" in text(result)
    assert strictly_increasing(seen)[-1] == 100, "every child finished: failures count"


async def test_findings_are_in_the_text(server: McpServer) -> None:
    result = await call(server, {"actions": ["findings"]})
    lines = text(result).splitlines()
    assert "alpha/pkg/x.py:3:1: F401 `os` imported but unused" in lines
    assert "alpha/pkg/y.py:7:5: shadowed name" in lines
    assert result.structured_content["results"][0]["result"]["count"] == 2


async def test_no_token_no_notifications(server: McpServer) -> None:
    server.notifications.clear()
    result = await call(server, {"actions": ["count"], "projects": ["alpha"]})
    assert result.structured_content["summary"]["ok"] == 1
    await asyncio.sleep(0.2)
    assert server.notifications == []


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"actions": ["nope"]}, "unknown action 'nope'"),
    ({"actions": ["count"], "projects": ["../elsewhere"]}, "outside the workspace"),
    ({"actions": ["count"], "projects": ["plain"]}, "not a FineCode project"),
    ({"actions": ["count"], "projects": ["broken"]}, "unknown action 'count'"),
    ({"actions": "count"}, "'actions' must be a list of non-empty strings"),
    ({"actions": []}, "at least one action"),
    ({"actions": ["count"], "params": [1]}, "'params' must be an object"),
    ({"actions": ["count"], "options": {"cache": "no"}}, "option 'cache' must be true or false"),
    ({"actions": ["count"], "options": {"colour": 1}}, "unknown option(s) colour"),
    ({"actions": ["count"], "extra": {}}, "unknown argument(s) extra"),
    ({}, "needs 'actions'"),
])
async def test_bad_input_is_a_tool_error(server: McpServer, arguments: dict[str, Any],
                                         expected: str) -> None:
    result = await call(server, arguments)
    assert result.is_error
    assert expected in text(result)


async def test_cancel_reaches_the_handler_and_the_server_keeps_serving(
        server: McpServer, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    seen: Seen = []
    running = asyncio.ensure_future(call(
        server, {"actions": ["marked"], "projects": ["alpha"], "params": {"marker": str(marker)}},
        seen))
    assert await wait_until(lambda: any("step" in (m or "") for _v, _t, m in seen))
    running.cancel()  # the client sends notifications/cancelled for the call
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert await wait_until(marker.exists, 5), "the handler never saw CancelledError"
    count = len(seen)
    again = await call(server, {"actions": ["quiet"], "projects": ["alpha"]})
    assert again.structured_content["summary"]["ok"] == 1
    assert len(seen) == count, "no progress after the cancel"


async def test_cancelled_hog_loses_its_runner_and_closing_stdin_leaves_no_process() -> None:
    server = McpServer()
    session = await server.start()
    seen: Seen = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    running = asyncio.ensure_future(session.call_tool(
        "run_actions", {"actions": ["hog"], "projects": [ALPHA], "params": {"seconds": 30}},
        progress_callback=progress))
    # Cancel once the handler runs (not while its runner starts: nothing to kill then).
    assert await wait_until(lambda: any("Hogging" in (m or "") for _v, _t, m in seen))
    (hogging,) = server.runners()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert await wait_until(lambda: gone(hogging.pid), 8), "a handler ignoring cancel survived"
    # Leave a run in flight, then close the client: the server and every runner must go.
    slow = asyncio.ensure_future(session.call_tool(
        "run_actions", {"actions": ["slow"], "projects": [ALPHA, BETA]}))
    assert await wait_until(lambda: len(server.runners()) >= 1)
    processes = [psutil.Process(server.pid), *server.runners()]
    slow.cancel()
    await server.close()
    assert await wait_until(lambda: all(gone(p.pid) for p in processes), 15), [
        p for p in processes if not gone(p.pid)]
