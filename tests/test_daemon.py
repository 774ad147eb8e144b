"""`finecode-wm daemon`: a run through it is the run the terminal's own process would make
(output, exit codes, edits seen, Ctrl-C), it is refused for what it must not answer, and it
starts, stops and ends as documented."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from finecode_wm.cli import client
from finecode_wm.cli.daemon import Daemon, _relay, _Relayed

from .cached import make_workspace
from .conftest import WORKSPACE, probe_env, socket_folder
from .rules import gone
from .test_cli import _pty_run

pytestmark = pytest.mark.timeout(120)

TIMES = re.compile(r"\d+\.\d+s")  # the bar's elapsed time and the table's durations


class DaemonUnderTest:
    """A daemon of the test's own (its own socket folder and cache), stopped afterwards."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def fc(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "finecode_wm", *args], cwd=cwd,
                              env=env or self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args: str) -> None:
        done = self.fc("daemon", "start", *args)
        assert done.returncode == 0 and "daemon started" in done.stdout, done

    def status(self) -> dict[str, Any] | None:
        return client.ask("status", client.address(self.env))

    def served(self) -> int:
        status = self.status()
        assert status is not None, "the daemon is running"
        return int(status["served"])

    def pid(self) -> int:
        status = self.status()
        assert status is not None
        return int(status["pid"])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonUnderTest]:
    runtime = socket_folder("fc-d-")
    env = probe_env() | {"XDG_RUNTIME_DIR": runtime, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    d = DaemonUnderTest(env)
    yield d
    status = d.status()
    d.fc("daemon", "stop", timeout=30)
    if status is not None and not gone(status["pid"]):
        os.kill(status["pid"], signal.SIGKILL)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def _same_stderr(a: str, b: str) -> None:
    assert TIMES.sub("T", a) == TIMES.sub("T", b)


FORMATS = [[], ["--json"], ["--output-format", "github"], ["--output-format", "sarif"],
           ["--output-format", "json-lines"], ["--statistics"], ["-q"], ["--exit-zero"]]


def test_a_run_through_the_daemon_is_the_run_of_the_terminals_own_process(
        daemon: DaemonUnderTest, ws: Path) -> None:
    """Every output format, the cache warm: the same stdout, stderr and exit code, and each
    went through the daemon."""
    assert daemon.fc("run", "lint", "local", "--no-daemon", cwd=ws).returncode == 1
    daemon.start()
    for i, args in enumerate(FORMATS):
        through = daemon.fc("run", "lint", "local", *args, cwd=ws)
        assert daemon.served() == i + 1, (args, through.stderr)
        alone = daemon.fc("run", "lint", "local", *args, "--no-daemon", cwd=ws)
        assert (through.returncode, through.stdout) == (alone.returncode, alone.stdout), args
        _same_stderr(through.stderr, alone.stderr)
        assert through.returncode == (0 if "--exit-zero" in args else 1)


def test_edits_between_runs_are_seen(daemon: DaemonUnderTest, ws: Path) -> None:
    """A file, a config, a new project and a removed one, each between two runs through the
    same warm daemon: each run's findings are those a run without it finds."""
    daemon.start()

    def both() -> dict[str, Any]:
        through = daemon.fc("run", "lint", "--json", cwd=ws)
        alone = daemon.fc("run", "lint", "--json", "--no-daemon", cwd=ws)
        found = json.loads(through.stdout)
        assert [e["result"] for e in found["results"]] == \
            [e["result"] for e in json.loads(alone.stdout)["results"]]
        return found

    served = 0

    def findings() -> int:
        nonlocal served
        result = both()
        served += 1
        assert daemon.served() == served
        return int(result["summary"]["findings"])

    assert findings() == 3
    (ws / "p2" / "c.py").write_text("import sys\ny = 2\n")
    assert findings() == 4, "a file edit"
    pyproject = ws / "p2" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('select = ["E", "F"]', 'select = ["E"]'))
    assert findings() == 2, "a config edit: p2's F findings gone"
    shutil.copytree(ws / "p1", ws / "p4")
    (ws / "p4" / "pyproject.toml").write_text(
        (ws / "p4" / "pyproject.toml").read_text().replace('"p1"', '"p4"'))
    assert findings() == 3, "a new project"
    shutil.rmtree(ws / "p3")
    assert findings() == 2, "a removed project"


def test_paths_and_output_are_the_callers_directory(daemon: DaemonUnderTest, ws: Path) -> None:
    daemon.start()
    here = ws / "p2"
    through = daemon.fc("run", "lint", "pkg", cwd=here)
    alone = daemon.fc("run", "lint", "pkg", "--no-daemon", cwd=here)
    assert daemon.served() == 1
    assert through.returncode == alone.returncode == 1
    assert through.stdout == alone.stdout
    assert through.stdout.startswith("pkg/b.py:2:5: F841"), through.stdout


def _wait_for_runners(daemon: DaemonUnderTest, count: int) -> None:
    """Until the daemon runs a caller's run (so the caller relays its signals) with `count`
    runners of its own started (runners are not kept between runs)."""
    deadline = time.monotonic() + 30
    while not ((daemon.status() or {}).get("busy") and len(
            [c for c in psutil.Process(daemon.pid()).children() if not gone(c.pid)]) >= count):
        assert time.monotonic() < deadline, "the run started its runners"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_the_run_and_the_next_run_works(daemon: DaemonUnderTest, signum: int,
                                                     code: int) -> None:
    daemon.start()
    for _ in range(2):  # cancel, then run again: twice on the same warm daemon
        proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "slow", "quiet"],
                                cwd=WORKSPACE, env=daemon.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _wait_for_runners(daemon, 2)
        time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        assert "cancelled" in err and "quiet" in err
        done = daemon.fc("run", "quiet", "--json", cwd=WORKSPACE)
        assert done.returncode == 2, "the workspace's broken project is a config error"
        assert json.loads(done.stdout)["summary"]["ok"] == 2, done.stderr
    assert daemon.served() == 4


def test_a_caller_killed_mid_run_stops_its_run(daemon: DaemonUnderTest) -> None:
    daemon.start()
    proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "slow"],
                            cwd=WORKSPACE, env=daemon.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for_runners(daemon, 2)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while (daemon.status() or {}).get("busy"):
        assert time.monotonic() < deadline, "the run ended with its caller"
        time.sleep(0.05)
    done = daemon.fc("run", "quiet", "--json", cwd=WORKSPACE)
    assert json.loads(done.stdout)["summary"]["ok"] == 2, done.stderr
    assert daemon.served() == 2


def test_another_environment_runs_in_its_own_process(daemon: DaemonUnderTest, ws: Path) -> None:
    """A variable a handler could read differs: not forwarded, and said; the terminal's own
    variables may differ."""
    daemon.start()
    other = daemon.fc("run", "lint", cwd=ws, env=daemon.env | {"SOMETHING_ELSE": "1"})
    assert other.returncode == 1 and "F401" in other.stdout
    assert "not using the daemon" in other.stderr and "SOMETHING_ELSE" in other.stderr
    assert "finecode-wm daemon restart" in other.stderr
    assert daemon.served() == 0
    shell = daemon.env | {"COLUMNS": "91", "TERM": "dumb", "NO_COLOR": "1", "OLDPWD": "/"}
    same = daemon.fc("run", "lint", cwd=ws, env=shell)
    assert same.returncode == 1 and "not using" not in same.stderr
    assert daemon.served() == 1


def test_runs_at_once_are_all_answered(daemon: DaemonUnderTest, ws: Path) -> None:
    """One run at a time in the daemon; the others run in their own processes: all right."""
    daemon.start()
    expected = json.loads(daemon.fc("run", "lint", "--json", "--no-daemon", cwd=ws).stdout)
    procs = [subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "lint", "--json"],
                              cwd=ws, env=daemon.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(5)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        found = json.loads(out)
        assert [e["result"] for e in found["results"]] == \
            [e["result"] for e in expected["results"]]
    assert 1 <= daemon.served() <= 5


def test_usage_errors_and_help_are_said_as_without_a_daemon(daemon: DaemonUnderTest,
                                                           ws: Path) -> None:
    daemon.start()
    for args in (["run", "lint", "--bogus"], ["run", "--help"], ["run", "lint", "--timeout", "0"],
                 ["run", "nothing-here"]):
        through = daemon.fc(*args, cwd=ws)
        alone = daemon.fc(*args, "--no-daemon", cwd=ws)
        assert (through.returncode, through.stdout, through.stderr) == \
            (alone.returncode, alone.stdout, alone.stderr), args
        assert through.returncode in (0, 2), (args, through)
    assert daemon.served() == 1, "only the well-formed `run nothing-here` was the daemon's"


def test_start_stop_restart_status(daemon: DaemonUnderTest) -> None:
    none = daemon.fc("daemon", "status")
    assert none.returncode == 1 and "no daemon is running" in none.stdout
    assert daemon.fc("daemon", "stop").stdout.startswith("no daemon is running")
    daemon.start("--idle-timeout", "600")
    first = daemon.pid()
    again = daemon.fc("daemon", "start")
    assert again.returncode == 0 and f"already running (pid {first})" in again.stdout
    status = daemon.fc("daemon", "status")
    assert status.returncode == 0 and f"pid {first}" in status.stdout
    assert "stops after 600 s without a run" in status.stdout
    restarted = daemon.fc("daemon", "restart")
    assert restarted.returncode == 0 and f"daemon stopped (pid {first})" in restarted.stdout
    assert daemon.pid() != first and gone(first)
    stopped = daemon.fc("daemon", "stop")
    assert stopped.returncode == 0 and "daemon stopped" in stopped.stdout
    assert daemon.status() is None and not os.path.exists(client.address(daemon.env))


def test_an_idle_daemon_stops_by_itself(daemon: DaemonUnderTest, ws: Path) -> None:
    daemon.start("--idle-timeout", "1")
    pid = daemon.pid()
    deadline = time.monotonic() + 60
    while not gone(pid):
        assert time.monotonic() < deadline, "the idle daemon stopped"
        time.sleep(0.1)
    assert not os.path.exists(client.address(daemon.env))
    done = daemon.fc("run", "lint", cwd=ws)
    assert done.returncode == 1 and "F401" in done.stdout, "no daemon: the run is the caller's"


def test_a_socket_folder_others_may_open_is_never_used(daemon: DaemonUnderTest, ws: Path) -> None:
    daemon.start()
    folder = os.path.dirname(client.address(daemon.env))
    os.chmod(folder, 0o755)
    try:
        done = daemon.fc("run", "lint", cwd=ws)
        assert done.returncode == 1 and "F401" in done.stdout
        assert client.ask("status", client.address(daemon.env)) is None
        refused = daemon.fc("daemon", "start")
        assert refused.returncode == 1 and "0700" in refused.stderr
    finally:
        os.chmod(folder, 0o700)
    assert daemon.served() == 0


def test_a_reader_that_leaves_ends_the_output_not_the_daemon(daemon: DaemonUnderTest,
                                                            ws: Path) -> None:
    daemon.start()
    done = subprocess.run(f"'{sys.executable}' -m finecode_wm run lint | head -1", shell=True,
                          cwd=ws, env=daemon.env, capture_output=True, text=True, timeout=60)
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr, done
    assert daemon.served() == 1
    assert daemon.fc("run", "lint", cwd=ws).stdout.count("\n") == 3


def test_a_terminal_gets_the_live_bar_through_the_daemon(daemon: DaemonUnderTest, ws: Path) -> None:
    daemon.start()
    code, text = _pty_run(["run", "lint", "local"], ws, 100, daemon.env)
    assert code == 1, text
    assert "FineCode: lint, local" in text and "100%" in text and "6 ok" in text
    assert "━" in text, "a bar: the daemon drew on the caller's terminal"
    assert daemon.served() == 1


def test_many_projects_over_the_cap_repeated_on_a_warm_daemon(daemon: DaemonUnderTest,
                                                              ws: Path) -> None:
    """More projects than `--max-parallel 3`, ten runs in a row on one daemon, every other one
    running every child again (on runners of its own): the same findings every time."""
    for i in range(4, 12):
        shutil.copytree(ws / "p1", ws / f"p{i}")
    daemon.start()
    results = []
    for i in range(10):
        args = ["--no-cache"] if i % 2 else []
        done = daemon.fc("run", "lint", "--json", "--max-parallel", "3", *args, cwd=ws)
        assert done.returncode == 1, done.stderr
        found = json.loads(done.stdout)
        assert found["summary"]["ok"] == 11 and found["summary"]["failed"] == 0
        results.append([e["result"] for e in found["results"]])
    assert all(r == results[0] for r in results)
    assert daemon.served() == 10


# -- the daemon's refusals, in this process ------------------------------------------------


def _refusal(daemon: Daemon, **run: Any) -> dict[str, Any] | None:
    request = {"env": dict(os.environ), **client.installation(), **run}
    return daemon._refusal(request, [0, 1, 2])


async def test_what_the_daemon_refuses() -> None:
    daemon = Daemon("/nonexistent.sock", 60)
    assert _refusal(daemon) is None
    assert _refusal(daemon, env=dict(os.environ) | {"TERM": "x", "COLUMNS": "1"}) is None
    changed = _refusal(daemon, env=dict(os.environ) | {"PATH": "/elsewhere"})
    assert changed is not None and changed["fallback"] == "environment" and \
        "(PATH)" in changed["note"]
    assert _refusal(daemon, prefix="/another/venv") == {"fallback": "installation"}
    assert daemon._refusal({"env": dict(os.environ), **client.installation()}, [0]) == \
        {"fallback": "streams"}
    daemon.busy = True
    assert _refusal(daemon) == {"fallback": "busy"}
    daemon.busy = False
    daemon.signature = ()  # as if FineCode's code changed since it started
    stale = _refusal(daemon)
    assert stale is not None and stale["fallback"] == "stale" and "older FineCode" in \
        stale["note"]
    assert daemon._stopping.is_set(), "a daemon with older code stops"
    await asyncio.sleep(0)


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A socket where the client looks for its daemon (in a folder of the test's own), for a
    test that plays the daemon itself."""
    runtime = socket_folder("fc-d-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    path = client.address()
    os.makedirs(os.path.dirname(path), mode=0o700)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen(1)
    yield listening
    listening.close()
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_run_answered_before_its_request_was_sent_whole_is_not_run_again(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket) -> None:
    """A run the daemon ends at once (an unknown action) may close the connection before the
    caller's send returned: the caller takes the answer and does not run it a second time."""
    closed = threading.Event()

    def answer_at_once() -> None:
        connection, _ = listener.accept()
        with connection:
            _data, fds, _flags, _address = socket.recv_fds(connection, 1 << 20, 3)
            for fd in fds:
                os.close(fd)
            connection.sendall(b'{"accepted": true}\n{"exit": 7}\n')
        closed.set()

    real_send_fds = client.send_fds

    def send_then_wait(sock: Any, data: bytes, fds: list[int]) -> int:
        sent = real_send_fds(sock, data, fds)
        closed.wait(10)  # the daemon answered and closed before this send returned
        return sent

    monkeypatch.setattr(client, "send_fds", send_then_wait)
    serving = threading.Thread(target=answer_at_once)
    serving.start()
    try:
        assert client.forward(["run", "nothing-here"]) == 7
    finally:
        serving.join(10)


class _Exited(BaseException):
    """`os._exit`, caught: the test's own process must not end."""


def test_a_daemon_that_never_answers_lets_the_third_ctrl_c_end_the_caller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped (SIGSTOP) or stuck daemon accepts the connection and never answers: the
    caller hung through every Ctrl-C and SIGTERM until it was killed."""
    def exit_now(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    caller, silent = socket.socketpair()
    default = signal.getsignal(signal.SIGINT)
    relaying = threading.Event()

    def ctrl_c_three_times() -> None:
        while signal.getsignal(signal.SIGINT) is default and not relaying.is_set():
            time.sleep(0.005)  # until the caller relays its signals
        for _ in range(client.MAX_SIGNALS):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    pressing = threading.Thread(target=ctrl_c_three_times)
    pressing.start()
    try:
        with pytest.raises(_Exited) as exited:
            client._await(caller)
        assert exited.value.args == (128 + signal.SIGINT,)
        assert silent.recv(1 << 16).count(b'"signal"') == client.MAX_SIGNALS - 1
    finally:
        relaying.set()
        pressing.join(10)
        caller.close()
        silent.close()
    assert signal.getsignal(signal.SIGINT) is default


@pytest.mark.parametrize("line", [b"[" * 100_000, b'{"run": ' + b"[" * 100_000, b"[1]",
                                  b"\xff\xfe"])
async def test_a_request_that_is_no_json_object_ends_its_connection_not_the_daemon(
        line: bytes) -> None:
    """A nesting too deep for the JSON parser raised RecursionError, which ended the daemon
    (every connection is a task of its one task group)."""
    daemon = Daemon("/nonexistent.sock", 60)
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(line + b"\n")
        await daemon._serve_one(ours)
        assert theirs.recv(1024) == b"", "closed without an answer"


async def test_a_signal_line_that_is_no_signal_leaves_the_relay_listening() -> None:
    """A line without a "signal" (or nested too deeply) ended the relay (KeyError,
    RecursionError): later Ctrl-Cs and the caller's hang-up no longer stopped its run."""
    stops: list[int] = []
    relayed = _Relayed()
    relayed.on_stop(stops.append)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    with ours:
        theirs.sendall(b'{"other": 1}\n' + b"[" * 100_000 + b"\n" + b'{"signal": 2}\n')
        theirs.close()
        await asyncio.wait_for(_relay(ours, b'{"signal": null}\n', relayed), 10)
    assert stops == [signal.SIGINT, signal.SIGHUP]


def test_a_deleted_current_directory_is_not_sent_to_the_daemon(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket) -> None:
    """`os.getcwd()` fails in a deleted directory: the caller printed a traceback from the
    daemon's client instead of running in its own process."""

    def deleted() -> str:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(os, "getcwd", deleted)
    assert client.forward(["run", "lint"]) is None
    connection, _ = listener.accept()
    with connection:
        assert connection.recv(1024) == b"", "no request was sent"


def test_an_installed_handler_edited_between_runs_is_run_as_it_is_now(daemon: DaemonUnderTest,
                                                                      tmp_path: Path) -> None:
    """A handler package outside the projects (on the path), edited between two runs through
    the daemon: the second run runs the edited code, as a run without the daemon would (a
    runner kept from the first run still had the old module imported)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    handler = shared / "sharedcheck.py"

    def write(message: str) -> None:
        handler.write_text("async def run(params, ctx):\n    return {'diagnostics': [{'path': "
                           f"'x.py', 'line': 1, 'column': 1, 'message': {message!r}}}]}}\n")

    write("first version")
    project = tmp_path / "ws" / "p"
    project.mkdir(parents=True)
    (project / "x.py").write_text("x = 1\n")
    (project / "pyproject.toml").write_text(
        '[tool.finecode.actions.check]\nhandlers = [{ source = "sharedcheck:run" }]\n')
    daemon.env["PYTHONPATH"] = f"{shared}{os.pathsep}{daemon.env['PYTHONPATH']}"
    daemon.start()
    first = daemon.fc("run", "check", cwd=tmp_path / "ws")
    assert first.stdout == "p/x.py:1:1: first version\n", first.stderr
    write("the edited version, longer")
    second = daemon.fc("run", "check", cwd=tmp_path / "ws")
    assert second.stdout == "p/x.py:1:1: the edited version, longer\n", second.stderr
    assert daemon.served() == 2


def test_what_start_and_status_say_in_odd_places(daemon: DaemonUnderTest, ws: Path,
                                                 tmp_path: Path) -> None:
    """A socket path too long for a socket, `status | head -1`, and a run from a current
    directory that was deleted: said in one line each, no traceback."""
    deep = socket_folder("fc-d-" + "x" * 90)
    too_long = daemon.fc("daemon", "start", env=daemon.env | {"XDG_RUNTIME_DIR": deep})
    shutil.rmtree(deep, ignore_errors=True)
    assert too_long.returncode == 1 and "longer than a socket's path may be" in too_long.stderr
    assert "Traceback" not in too_long.stderr
    daemon.start()
    piped = subprocess.run(f"'{sys.executable}' -m finecode_wm daemon status | head -1",
                           shell=True, env=daemon.env, capture_output=True, text=True,
                           timeout=30)
    assert piped.stdout.startswith("daemon running") and piped.stderr == ""
    gone_dir = tmp_path / "gone"
    gone_dir.mkdir()
    deleted = subprocess.run(f"cd '{gone_dir}' && rmdir '{gone_dir}' && '{sys.executable}' "
                             "-m finecode_wm run lint", shell=True, env=daemon.env,
                             capture_output=True, text=True, timeout=60)
    assert deleted.returncode == 2, deleted
    assert deleted.stderr == "error: the current directory no longer exists\n"


def test_a_daemon_from_another_environment_says_so_and_stopping_it_is_said_to_its_run(
        daemon: DaemonUnderTest) -> None:
    """`status` and `start` from an environment whose runs it will not take say so; a run that
    `daemon stop` cancels says why; the log has each run and why it stopped."""
    daemon.start()
    other = daemon.env | {"PYENV_VERSION": "3.12.0"}
    status = daemon.fc("daemon", "status", env=other)
    assert status.returncode == 0
    assert "runs from this environment do not use it" in status.stdout
    assert "(PYENV_VERSION differ)" in status.stdout
    assert "runs from this environment" not in daemon.fc("daemon", "status").stdout
    again = daemon.fc("daemon", "start", env=other)
    assert "already running" in again.stdout and "PYENV_VERSION" in again.stdout
    proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "slow"], cwd=WORKSPACE,
                            env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for_runners(daemon, 2)
    assert daemon.fc("daemon", "stop").returncode == 0
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "note: the daemon stopped during the run (finecode-wm daemon stop), which was " \
           "cancelled" in err
    log = Path(client.address(daemon.env).removesuffix(".sock") + ".log").read_text()
    assert "ran ['run', 'slow']" in log and "exit 143" in log
    assert "stopping: finecode-wm daemon stop" in log


def test_a_caller_with_a_file_size_limit_runs_in_its_own_process(daemon: DaemonUnderTest,
                                                                 ws: Path,
                                                                 tmp_path: Path) -> None:
    """`ulimit -f` is the caller's, not the daemon's: the daemon wrote the whole output into
    the caller's file (exit 1) where the caller's own process stops at the limit (exit 2)."""
    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    daemon.start()
    done = {}
    for how in ("through", "alone"):
        out = tmp_path / f"{how}.sarif"
        with out.open("w") as file:
            run = subprocess.run(
                [sys.executable, "-m", "finecode_wm", "run", "lint", "local", "--output-format",
                 "sarif", *(["--no-daemon"] if how == "alone" else [])],
                cwd=ws, env=daemon.env, stdout=file, stderr=subprocess.PIPE, text=True,
                timeout=90, preexec_fn=limited)
        done[how] = (run.returncode, out.stat().st_size, "File too large" in run.stderr)
    assert done["alone"] == (2, 1024, True)
    assert done["through"] == done["alone"]
    assert daemon.served() == 0


def test_elsewhere_than_posix_runs_are_the_callers_and_the_daemon_says_why(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon hands file descriptors over a Unix socket: on another system a run never
    asks for it, and `daemon` says it cannot be had."""
    from finecode_wm import main as entry
    from finecode_wm.cli import commands

    def no_daemon(_argv: object) -> int:
        raise AssertionError("the daemon was asked")

    monkeypatch.setattr(client, "forward", no_daemon)
    monkeypatch.setattr(commands, "dispatch", lambda _args: 0)
    monkeypatch.setattr(entry, "_exit_now", sys.exit)  # not os._exit: this is pytest's process
    monkeypatch.setattr(os, "name", "nt")
    with pytest.raises(SystemExit) as ran:
        entry.main(["run", "lint"])
    with pytest.raises(SystemExit) as refused:
        entry.main(["daemon", "start"])
    monkeypatch.undo()
    assert (ran.value.code, refused.value.code) == (0, 2)
    assert "the daemon needs a POSIX system" in capsys.readouterr().err
