"""Shared fixtures: a runner subprocess on real pipes."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from finecode_er.wire import Connection

FIXTURES = Path(__file__).parent / "fixtures"
ER_PROJECT = FIXTURES / "er_project"
WORKSPACE = FIXTURES / "workspace"
EXAMPLES = Path(__file__).parent.parent / "examples" / "workspace"
# What running the demo leaves in the example workspace: its venvs, pytest's caches.
EXAMPLE_LEFTOVERS = shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache")
# `finecode-wm run` keeps run times in the user's cache directory: not the real one under test.
CACHE = Path(tempfile.mkdtemp(prefix="finecode-test-cache-"))


def socket_folder(prefix: str) -> str:
    """A new 0700 folder whose path is short enough for a Unix socket's under it (at most 107
    bytes): under /tmp, whatever TMPDIR says (a CI's may be deep)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None)


# No test reaches a daemon the person running the suite started (`finecode-wm daemon`): every
# process the tests start looks for one in this session's own folder.
os.environ["XDG_RUNTIME_DIR"] = socket_folder("fc-rt-")


class RunnerUnderTest:
    """A `python -m finecode_er` child and what it sent."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.progress: dict[Any, list[Any]] = defaultdict(list)
        assert proc.stdout is not None and proc.stdin is not None
        self.conn = Connection(proc.stdout, proc.stdin, on_notification=self._notified)
        self.serving = asyncio.get_running_loop().create_task(self.conn.serve())
        self.stderr = bytearray()
        self.draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr += chunk

    def _notified(self, method: str, params: Any) -> None:
        if method == "$/progress":
            self.progress[params["token"]].append(params["value"])

    async def request(self, method: str, params: Any = None) -> Any:
        return await asyncio.wait_for(self.conn.request(method, params), 20)


def counted_reads(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Path]:
    """Every pyproject.toml that `module.read_pyproject` parses from now on, in order."""
    parsed: list[Path] = []
    real = module.read_pyproject

    def counting(path: Path) -> Any:
        parsed.append(path)
        return real(path)

    monkeypatch.setattr(module, "read_pyproject", counting)
    return parsed


def copy_examples(target: Path) -> Path:
    """A copy of the example workspace, so runs never write into the repository."""
    return Path(shutil.copytree(EXAMPLES, target, ignore=EXAMPLE_LEFTOVERS))


def probe_env() -> dict[str, str]:
    """The environment for servers and runners under test: probe handlers importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FIXTURES), env.get("PYTHONPATH")) if p)
    env["XDG_CACHE_HOME"] = str(CACHE)
    return env


async def start_runner(root: Path = ER_PROJECT, **init: Any) -> RunnerUnderTest:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "finecode_er", cwd=root, env=probe_env(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    runner = RunnerUnderTest(proc)
    await runner.request("initialize", {"projectRoot": str(root), **init})
    return runner


@pytest.fixture
async def runner() -> AsyncIterator[RunnerUnderTest]:
    r = await start_runner()
    yield r
    if r.proc.returncode is None:
        r.proc.kill()
    await r.proc.wait()
    r.serving.cancel()
    r.draining.cancel()
