"""1. Runner cold start: spawn `python -m finecode_er`, send `initialize`, time the answer.

Also the runner's idle RSS after initialize, and for comparison a process that only imports
pygls + lsprotocol (what the runner avoids) and a bare interpreter doing the same handshake.
Runs are interleaved (runner, pygls import, bare) so machine drift hits all three alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

import psutil

from .common import MB, Figure, figure, interleave, now

NAME = "cold_start"
TITLE = "Runner cold start"

PYPROJECT = """[project]
name = "cold"

[tool.finecode.actions.noop]
handlers = [{ source = "os:getcwd" }]
"""

READY = "import sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
IMPORT_PYGLS = "import pygls.lsp.server, lsprotocol.types; " + READY


def _frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def _read_frame(stream: IO[bytes] | None) -> dict[str, object]:
    assert stream is not None
    length = -1
    while True:
        line = stream.readline()
        if not line:
            raise RuntimeError("runner closed its stdout before answering")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    answer: dict[str, object] = json.loads(stream.read(length))
    return answer


class Sample:
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.rss: list[float] = []

    def add(self, seconds: float, proc: subprocess.Popen[bytes]) -> float:
        self.seconds.append(seconds)
        try:
            self.rss.append(psutil.Process(proc.pid).memory_info().rss / MB)
        except psutil.Error:
            pass
        return seconds


def _finish(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _runner(project: Path, sample: Sample) -> float:
    start = now()
    proc = subprocess.Popen([sys.executable, "-m", "finecode_er"], cwd=project,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                             "params": {"projectRoot": str(project)}}))
    proc.stdin.flush()
    answer = _read_frame(proc.stdout)
    elapsed = now() - start
    if "result" not in answer:
        raise RuntimeError(f"initialize failed: {answer}")
    sample.add(elapsed, proc)
    _finish(proc)
    return elapsed


def _python(code: str, cwd: Path, sample: Sample) -> float:
    start = now()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if proc.stdout.readline() != b"ready\n":
        raise RuntimeError(f"{code!r} did not start")
    elapsed = now() - start
    sample.add(elapsed, proc)
    _finish(proc)
    return elapsed


async def run(quick: bool) -> list[Figure]:
    runs = 12 if quick else 20
    with tempfile.TemporaryDirectory(prefix="fcbench-cold-") as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text(PYPROJECT)
        runner, pygls, bare = Sample(), Sample(), Sample()
        _runner(project, Sample())  # one unmeasured start: page cache, .pyc files
        _python(IMPORT_PYGLS, project, Sample())
        interleave(runs, {
            "runner": lambda: _runner(project, runner),
            "pygls": lambda: _python(IMPORT_PYGLS, project, pygls),
            "bare": lambda: _python(READY, project, bare),
        })
    ms = [s * 1000 for s in runner.seconds]
    return [
        figure(NAME, "runner spawn → initialize answered", "ms", ms, goal_max=150),
        figure(NAME, "runner idle RSS after initialize", "MB", runner.rss, goal_max=25),
        figure(NAME, "bare python -c (spawn → ready)", "ms", [s * 1000 for s in bare.seconds],
               note="reference: interpreter + site start-up only"),
        figure(NAME, "bare python RSS", "MB", bare.rss),
        figure(NAME, "import pygls.lsp.server + lsprotocol.types", "ms",
               [s * 1000 for s in pygls.seconds],
               note="what the runner would pay if it used pygls"),
        figure(NAME, "pygls + lsprotocol import RSS", "MB", pygls.rss),
    ]
