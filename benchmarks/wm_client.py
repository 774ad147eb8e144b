"""A minimal hand-written LSP client for `finecode-wm lsp`, generated workspaces, and sampling.

The client reuses `finecode_er.wire.Connection` (Content-Length JSON-RPC over pipes) and stamps
every `$/progress` it receives with `perf_counter()` at dispatch time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from finecode_er.wire import Connection

from .common import REPO, now

HANDLERS_SRC = Path(__file__).with_name("bench_handlers.py")
ACTIONS = {"trivial": "fcbench:trivial", "steps": "fcbench:steps", "flood": "fcbench:flood",
           "wait": "fcbench:wait", "block": "fcbench:block", "delegated": "fcbench:delegated",
           "ticks": "fcbench:ticks", "delegated_ticks": "fcbench:delegated_ticks"}


def make_workspace(n_projects: int, *, prefix: str = "fcbench-") -> Path:
    """A temporary workspace folder with `n_projects` projects defining every bench action."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    source = HANDLERS_SRC.read_text()
    for i in range(n_projects):
        project = root / f"p{i:03d}"
        project.mkdir()
        lines = [f'[project]\nname = "p{i:03d}"\n']
        for action, handler in ACTIONS.items():
            lines.append(f"[tool.finecode.actions.{action}]\n"
                         f'handlers = [{{ source = "{handler}" }}]\n')
        (project / "pyproject.toml").write_text("\n".join(lines))
        (project / "fcbench.py").write_text(source)
    return root


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wm_command() -> list[str]:
    script = Path(sys.executable).parent / "finecode-wm"
    return [str(script), "lsp"] if script.exists() else [sys.executable, "-m", "finecode_wm",
                                                          "lsp"]


@dataclass
class BatchRun:
    """One `runBatch`: when it was sent and answered, its result, its token's progress."""

    sent: float
    answered: float
    result: Any
    progress: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.answered - self.sent

    def first(self, kind: str) -> float | None:
        return next((t for t, v in self.progress if v.get("kind") == kind), None)

    def paced_reports(self) -> list[float]:
        """Arrival times of the reports, without the final flush right before `end`.

        Rule 5 lets that flush go out early (the latest state is flushed before end), so it
        does not count against the ~10/s pacing.
        """
        values = self.progress
        return [t for i, (t, v) in enumerate(values) if v.get("kind") == "report"
                and not (i + 1 < len(values) and values[i + 1][1].get("kind") == "end")]

    def max_reports_in(self, window: float = 1.0) -> int:
        """The most paced reports that arrived within any `window` seconds."""
        times = self.paced_reports()
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] > window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def last_report_before_end(self) -> dict[str, Any] | None:
        kinds = [v for _, v in self.progress]
        if not kinds or kinds[-1].get("kind") != "end":
            return None
        reports = [v for v in kinds if v.get("kind") == "report"]
        return reports[-1] if reports else None


class WMClient:
    """Editor side of one WM process."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.conn: Connection | None = None
        self.ps: psutil.Process | None = None
        self.progress: dict[Any, list[tuple[float, dict[str, Any]]]] = {}
        self.notifications = 0
        self._tokens = itertools.count(1)
        self._serving: asyncio.Task[None] | None = None

    async def start(self, workspace: Path, *, options: dict[str, Any] | None = None,
                    work_done_progress: bool = False,
                    stderr: Any = asyncio.subprocess.DEVNULL) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            *wm_command(), cwd=REPO, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, limit=2**24)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.ps = psutil.Process(self.proc.pid)
        self.conn = Connection(self.proc.stdout, self.proc.stdin, on_request=self._on_request,
                               on_notification=self._on_notification)
        self._serving = asyncio.get_running_loop().create_task(self.conn.serve())
        uri = workspace.as_uri()
        capabilities: dict[str, Any] = {}
        if work_done_progress:
            capabilities["window"] = {"workDoneProgress": True}
        result: dict[str, Any] = await self.conn.request("initialize", {
            "processId": None, "rootUri": uri, "capabilities": capabilities,
            "workspaceFolders": [{"uri": uri, "name": workspace.name}],
            "initializationOptions": options or {}})
        self.conn.notify("initialized", {})
        return result

    async def _on_request(self, method: str, params: Any) -> Any:
        return None  # window/workDoneProgress/create and friends: accept

    def _on_notification(self, method: str, params: Any) -> None:
        self.notifications += 1
        if method == "$/progress":
            self.progress.setdefault(params["token"], []).append((now(), params["value"]))

    def token(self) -> str:
        return f"bench-{next(self._tokens)}"

    async def run_batch(self, actions: list[str], *, token: str | None = None,
                        params: dict[str, Any] | None = None,
                        projects: list[str] | None = None,
                        options: dict[str, Any] | None = None) -> BatchRun:
        assert self.conn is not None
        request: dict[str, Any] = {"actions": actions}
        if options is not None:
            request["options"] = options
        if params is not None:
            request["params"] = params
        if projects is not None:
            request["projects"] = projects
        if token is not None:
            request["workDoneToken"] = token
            self.progress[token] = []
        sent = now()
        result = await self.conn.request("runBatch", request)
        run = BatchRun(sent, now(), result)
        if token is not None:
            run.progress = self.progress.pop(token)
        return run

    async def warm_up(self, action: str = "trivial", rounds: int = 2) -> None:
        for _ in range(rounds):
            await self.run_batch([action])

    def runner_processes(self) -> list[psutil.Process]:
        assert self.ps is not None
        try:
            children: list[psutil.Process] = self.ps.children(recursive=False)
        except psutil.Error:
            return []
        return children

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def runner_rss(self) -> int:
        total = 0
        for child in self.runner_processes():
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def stop(self) -> None:
        proc, conn = self.proc, self.conn
        if proc is None or conn is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.request("shutdown", None), 10)
            conn.notify("exit")
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(BaseException):
                await self._serving


class Sampler:
    """Samples the WM's RSS and runner count every `interval` seconds while it runs."""

    def __init__(self, client: WMClient, interval: float = 0.02) -> None:
        self.client = client
        self.interval = interval
        self.peak_rss = 0
        self.peak_runners = 0
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self.client.rss())
        runners = self.client.runner_processes()
        self.peak_runners = max(self.peak_runners, len(runners))

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()
