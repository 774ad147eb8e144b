"""A workspace as hostile repositories make them, and strict clients that check every surface.

`build(root)` writes two healthy projects with known findings beside every kind of bad
`pyproject.toml` the WM must survive; `Hostile` says what each surface must report about it.
`strict_loads` parses JSON as a strict client does (no NaN, no Infinity). `LspPipe` and
`McpPipe` speak to `finecode-wm lsp` / `finecode-wm mcp` over raw pipes and parse every message
strictly, so invalid JSON fails the test instead of being accepted by a lenient parser.

Extend `build` with new cases (and `Hostile` with what they must produce): every surface test
in test_hostile_input.py then covers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conftest import probe_env

ECHO = "probe_handlers:echo"  # returns its config: diagnostics in it become findings


def _reject(constant: str) -> Any:
    raise ValueError(f"invalid JSON constant {constant}")


def strict_loads(text: str | bytes) -> Any:
    """JSON as RFC 8259 has it: NaN, Infinity and -Infinity are errors."""
    return json.loads(text, parse_constant=_reject)


def _lint(source: str, config: str = "") -> str:
    config = f", config = {config}" if config else ""
    return f'[tool.finecode.actions.lint]\nhandlers = [{{ source = "{source}"{config} }}]\n'


@dataclass
class Hostile:
    """What the workspace holds, and what every surface must say about it."""

    root: Path
    healthy: dict[str, Path] = field(default_factory=dict)  # name -> project with findings
    dated: Path | None = None  # TOML dates in a handler config: converted, and it runs
    broken: dict[Path, str] = field(default_factory=dict)  # project -> part of its problem
    unimportable: dict[Path, str] = field(default_factory=dict)  # fails to import when run
    skipped: dict[Path, str] = field(default_factory=dict)  # folder -> part of its warning
    findings: list[str] = field(default_factory=list)  # `path:line:col: CODE message`, by root
    # Projects that run but misbehave at run time, -> part of what each surface must show.
    nonfinite: Path | None = None  # NaN and Infinity in its result: null on the wire
    chatty: Path | None = None  # one 20 MiB stderr line: drained, the run is ok
    huge: dict[Path, str] = field(default_factory=dict)  # a result over 64 MiB: that child fails
    outside: dict[Path, str] = field(default_factory=dict)  # findings outside it: dropped, noted

    @property
    def config_errors(self) -> set[Path]:
        """Projects a run over everything names as config errors."""
        return set(self.broken) | set(self.unimportable)

    @property
    def runnable(self) -> set[Path]:
        return {*self.healthy.values(), *filter(None, [self.dated, self.nonfinite, self.chatty]),
                *self.unimportable, *self.huge, *self.outside}

    @property
    def summary(self) -> dict[str, int]:
        """A `run lint` over everything: the failed children are the unimportable and huge."""
        failed = len(self.unimportable) + len(self.huge)
        return {"ok": len(self.runnable) - failed, "failed": failed, "cancelled": 0}


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path.parent


def build(root: Path) -> Hostile:
    """Every project defines `lint`, so `run lint` selects all of them."""
    ws = Hostile(root)
    alpha = _write(root / "alpha" / "pyproject.toml",
                   '[project]\nname = "alpha"\n' + _lint("probe_handlers:findings"))
    beta = _write(root / "beta" / "pyproject.toml", '[project]\nname = "beta"\n' + _lint(
        ECHO, '{ diagnostics = [\n'
        '  { path = "src/m.py", line = 1, column = 8, code = "F401",'
        ' message = "`sys` imported but unused" },\n'
        '  { path = "src/m.py", line = 2, column = 1, code = "N1", message = "a note",'
        ' severity = "information" },\n] }'))
    ws.healthy = {"alpha": alpha, "beta": beta}
    ws.findings = [
        "alpha/pkg/x.py:3:1: F401 `os` imported but unused",
        "alpha/pkg/y.py:7:5: shadowed name",
        "beta/src/m.py:1:8: F401 `sys` imported but unused",
        "beta/src/m.py:2:1: N1 a note",
    ]
    ws.dated = _write(root / "dated" / "pyproject.toml", _lint(
        ECHO, "{ day = 1979-05-27, at = 07:32:00, stamp = 1979-05-27T07:32:00Z,"
              " local = 1979-05-27T07:32:00.5, days = [2024-02-29] }"))

    # Projects that misbehave only when they run: each costs only itself.
    ws.nonfinite = _write(root / "nonfinite" / "pyproject.toml",
                          _lint("hostile_handlers:nonfinite"))
    ws.chatty = _write(root / "chatty" / "pyproject.toml", _lint("hostile_handlers:stderr_line"))
    ws.huge[_write(root / "huge" / "pyproject.toml", _lint("hostile_handlers:huge"))] = \
        "over the 64 MiB limit"
    far = _write(root / "far" / "pyproject.toml", _lint("hostile_handlers:outside"))
    (root.parent / "elsewhere").mkdir(exist_ok=True)
    (far / "link").symlink_to(root.parent / "elsewhere")
    ws.outside[far] = "far · lint: dropped 3 finding(s) for files outside the project"
    ws.findings += [f"far/inside.py:{2**31 - 1}:{2**31 - 1}: far down",
                    "far/abs.py:2:1: absolute, inside"]
    ws.findings.sort(key=lambda line: line.split(":", 1)[0])

    # Broken FineCode projects: each is one config error of its folder.
    ws.broken[_write(root / "badbytes" / "pyproject.toml",
                     _lint("probe_handlers:findings").encode() + b"# caf\xe9\n")] = "not UTF-8"
    ws.broken[_write(root / "deepfc" / "pyproject.toml",
                     "[tool.finecode]\na = " + "[" * 5000)] = "nested too deeply"
    ws.broken[_write(root / "longkey" / "pyproject.toml",
                     "[tool.finecode]\n" + "x." * 40_000 + "x = 1\n")] = \
        "a key of more than 32 dotted parts"
    ws.broken[_write(root / "nan" / "pyproject.toml", _lint(ECHO, "{ when = nan }"))] = \
        "[tool.finecode].actions.lint.handlers[0].config.when: nan is not allowed"
    ws.broken[_write(root / "typo" / "pyproject.toml",
                     '[tool.finecode.actions.lint]\nhandler = [{ source = "x:y" }]\n')] = \
        "unknown key(s) handler"
    ws.unimportable[_write(root / "unimportable" / "pyproject.toml",
                           _lint("no_such_module_fc:run"))] = \
        "cannot import handler 'no_such_module_fc:run'"

    # Files that are not ours to judge: one warning each, never a failure.
    ws.skipped[_write(root / "vendored" / "pyproject.toml",
                      b'[project]\nname = "caf\xe9"\n')] = "not UTF-8"
    ws.skipped[_write(root / "deepvendored" / "pyproject.toml", "a = " + "[" * 5000)] = \
        "nested too deeply"
    for name, make in (("fifo", lambda p: os.mkfifo(p)),
                       ("zero", lambda p: p.symlink_to("/dev/zero")),
                       ("stdin", lambda p: p.symlink_to("/dev/stdin"))):
        (root / name).mkdir()
        make(root / name / "pyproject.toml")
        ws.skipped[root / name] = "not a regular file"
    (root / "loop").mkdir()
    (root / "loop" / "again").symlink_to(root)  # a directory symlink loop: never entered
    return ws


def add_project(root: Path, name: str) -> Path:
    """A healthy project added after start (it reports one finding)."""
    return _write(root / name / "pyproject.toml", f'[project]\nname = "{name}"\n' + _lint(
        ECHO, '{ diagnostics = [{ path = "new.py", line = 4, column = 2, code = "E1",'
              ' message = "added" }] }'))


# -- strict clients ------------------------------------------------------------------------


class _Pipe:
    """A server subprocess on stdio; every message it writes is parsed strictly."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.received: list[dict[str, Any]] = []
        self.stderr = bytearray()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.broken: BaseException | None = None  # a message that did not parse

    async def _spawn(self, *args: str, cwd: Path) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "finecode_wm", *args, cwd=cwd, env=probe_env(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=2**24)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._drain())]

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr += chunk

    async def _frame(self) -> bytes | None:
        raise NotImplementedError

    def _send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _read(self) -> None:
        try:
            while (body := await self._frame()) is not None:
                message = strict_loads(body)
                self.received.append(message)
                if "method" in message and "id" in message:  # a server request: accept it
                    self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                elif "id" in message and message["id"] in self._waiting:
                    self._waiting.pop(message["id"]).set_result(message)
        except Exception as exc:
            self.broken = exc
            for waiting in self._waiting.values():
                waiting.set_exception(exc)

    async def call(self, method: str, params: Any = None, seconds: float = 40) -> dict[str, Any]:
        """The whole response message (`result` or `error`)."""
        msg_id = next(self._ids)
        self._waiting[msg_id] = asyncio.get_running_loop().create_future()
        self._send({"jsonrpc": "2.0", "id": msg_id, "method": method,
                    **({} if params is None else {"params": params})})
        return await asyncio.wait_for(self._waiting[msg_id], seconds)

    def notify(self, method: str, params: Any = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method,
                    **({} if params is None else {"params": params})})

    def notifications(self, method: str) -> list[Any]:
        return [m.get("params") for m in self.received if m.get("method") == method
                and "id" not in m]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def close(self) -> None:
        """Close stdin and wait; killed if it does not go."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class LspPipe(_Pipe):
    """`finecode-wm lsp` with Content-Length framing."""

    async def start(self, root: Path, **options: Any) -> dict[str, Any]:
        await self._spawn("lsp", cwd=root)
        answer = await self.call("initialize", {
            "processId": None, "rootUri": root.as_uri(),
            "capabilities": {"window": {"workDoneProgress": True}},
            "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
            "initializationOptions": options})
        self.notify("initialized", {})
        return answer

    async def _frame(self) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        length = None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        assert length is not None, "a frame without Content-Length"
        return await self.proc.stdout.readexactly(length)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("shutdown", seconds=15)
        self.notify("exit")
        await self.close()


class McpPipe(_Pipe):
    """`finecode-wm mcp` with newline-delimited JSON."""

    async def start(self, root: Path, protocol_version: str) -> dict[str, Any]:
        await self._spawn("mcp", "--workspace", str(root), cwd=root)
        answer = await self.call("initialize", {
            "protocolVersion": protocol_version, "capabilities": {},
            "clientInfo": {"name": "hostile-test", "version": "0"}})
        self.notify("notifications/initialized")
        return answer

    async def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A `tools/call` result (raises on a protocol error)."""
        answer = await self.call("tools/call", {"name": name, "arguments": arguments})
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def _frame(self) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        return line or None

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
