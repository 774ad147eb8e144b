"""The terminal front end as a user runs it: `finecode-wm run` / `list`, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from rich.cells import cell_len

from .conftest import CACHE, WORKSPACE, copy_examples, probe_env
from .rules import gone

pytestmark = pytest.mark.timeout(60)



def cli(*args: str, cwd: Path = WORKSPACE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finecode_wm", *args], cwd=cwd,
                          env=probe_env(), capture_output=True, text=True, timeout=50)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the example workspace, so runs never write into the repository."""
    return copy_examples(tmp_path / "workspace")


def test_run_examples_plain_output_and_table(examples: Path) -> None:
    done = cli("run", "lint", "stats", cwd=examples)
    assert done.returncode == 1, "findings exit 1, like ruff"
    lines = done.stderr.splitlines()
    assert "FineCode: lint, stats" in lines[0] and "0%" in lines[0]
    assert any("100%" in line for line in lines), done.stderr
    assert any(line.strip().endswith("6 ok") for line in lines), done.stderr
    assert "FineCode results" in done.stderr and "count=5" in done.stderr


def test_run_json_is_the_lsp_result_shape(examples: Path) -> None:
    done = cli("run", "lint", "--json", "--project", str(examples / "small"), cwd=examples)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["summary"] == {"ok": 1, "failed": 0, "cancelled": 0, "cached": 0,
                                 "findings": 2, "config_errors": 0}
    assert result["config_errors"] == [], "always present in --json"
    (entry,) = result["results"]
    assert entry["action"] == "lint" and entry["result"]["count"] == 2


def test_failures_exit_1_broken_configs_and_bad_input_exit_2() -> None:
    alpha_beta = ["--project", str(WORKSPACE / "alpha"), "--project", str(WORKSPACE / "beta")]
    failed = cli("run", "boom", *alpha_beta)
    assert failed.returncode == 1
    assert "ValueError: the widget is broken" in failed.stderr
    assert "config error:" not in failed.stderr, "the broken project is not selected"
    everything = cli("run", "boom")
    assert everything.returncode == 2, "every project is selected, the broken one too"
    assert "ValueError: the widget is broken" in everything.stderr, "the others still run"
    assert f"config error: {WORKSPACE / 'broken'}: pyproject.toml [tool.finecode]" in \
        everything.stderr, "the project named once, the file relative to it"
    assert "[tool.finecode].actions.lint.handlers[0]: unknown key(s) colour" in \
        everything.stderr, "brackets in messages are printed, not read as markup"
    assert cli("run", "boom", "--exit-zero").returncode == 2, "--exit-zero keeps config errors"
    unknown = cli("run", "nope")
    assert unknown.returncode == 2 and "unknown action 'nope'" in unknown.stderr


def test_list(examples: Path) -> None:
    done = cli("list", "--json", cwd=examples)
    assert done.returncode == 0
    assert [p["name"] for p in json.loads(done.stdout)] == ["large", "medium", "small"]
    plain = cli("list", cwd=examples)
    actions = "[check, discover_tests, format, lint, prepare_env, stats, test]"
    assert "small" in plain.stdout and actions in plain.stdout, plain.stdout
    assert cli("list").returncode == 1, "a broken config is an error for `list`"


@pytest.mark.parametrize("output", [[], ["--json", "--exit-zero"], ["--output-format", "sarif"]])
def test_stdout_closed_by_its_reader_ends_the_output_not_the_run(
        examples: Path, output: list[str]) -> None:
    """`finecode-wm run lint | head -1`: the reader left; the table, the clean-up and the exit
    code stay, with no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "lint", *output],
                            cwd=examples, env=probe_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # before anything was written: every write meets a closed pipe
    _, err = proc.communicate(timeout=50)
    assert proc.returncode == (0 if "--exit-zero" in output else 1), err  # as if it stayed
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    if not output:
        assert "FineCode results" in err


@pytest.mark.parametrize("where", ["dispatch", "parse", "forward"])
def test_ctrl_c_outside_the_runs_handler_exits_130_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str) -> None:
    """Ctrl-C while the program starts (a warm, fully cached run is mostly its start: asking
    the daemon, reading the command line, importing) or a second one while the results are
    written reaches no handler of the run's own."""
    from finecode_wm import main as entry
    from finecode_wm.cli import arguments, client, commands

    def interrupted(*_args: object) -> int:
        raise KeyboardInterrupt

    owner = {"dispatch": commands, "parse": arguments, "forward": client}[where]
    monkeypatch.setattr(owner, where, interrupted)
    monkeypatch.setattr(entry, "_exit_now", sys.exit)  # not os._exit: this is pytest's process
    with pytest.raises(SystemExit) as exited:
        entry.main(["run", "lint", "--workspace", str(WORKSPACE)])
    assert exited.value.code == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_cancels_children_and_exits_130(signum: int, code: int) -> None:
    """SIGTERM (a cancelled CI job) as Ctrl-C: every child cancelled cleanly, 128 + signal."""
    proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "slow", "quiet"],
                            cwd=WORKSPACE, env=probe_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    runners: list[int] = []
    deadline = time.monotonic() + 20
    while len(runners) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        runners = [p.pid for p in psutil.Process(proc.pid).children()]
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert "cancelled" in err and "quiet" in err
    for pid in runners:
        assert gone(pid)


def test_tty_renders_a_live_bar(examples: Path) -> None:
    code, text = _pty_run(["run", "stats"], examples)
    assert code == 0, text
    assert "FineCode: stats" in text and "100%" in text and "3 ok" in text


def test_project_with_its_own_interpreter_and_an_unimportable_handler(tmp_path: Path) -> None:
    """The runner runs on the project's interpreter, which need not have FineCode installed."""
    bare = tmp_path / "bin" / "python3"
    bare.parent.mkdir()
    bare.symlink_to(Path(sys.base_prefix) / "bin" / Path(sys.executable).name)  # no venv
    project = tmp_path / "proj"
    project.mkdir()
    (project / "own.py").write_text(
        "import sys\n\nasync def where(params, ctx):\n    return sys.prefix\n")
    (project / "pyproject.toml").write_text(
        f'[tool.finecode]\npython = "{bare}"\n'
        '[tool.finecode.actions.where]\nhandlers = [{ source = "own:where" }]\n'
        '[tool.finecode.actions.broken]\nhandlers = [{ source = "own_missing:run" }]\n')
    done = cli("run", "where", "--json", "--workspace", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["results"]
    assert entry["result"] == sys.base_prefix, "ran on the project's interpreter"
    assert "own_missing" not in done.stderr, "starting a runner imports no handler"
    both = cli("run", "where", "broken", "--json", "--workspace", str(tmp_path))
    assert both.returncode == 2, "a handler that does not import is a config error"
    result = json.loads(both.stdout)
    where, broken = result["results"]
    assert where["status"] == "ok" and broken["status"] == "failed"
    assert broken["errorData"]["kind"] == "import"
    (problem,) = result["config_errors"]
    assert problem["project"] == str(project) and problem["error"].startswith(
        "action 'broken': cannot import handler 'own_missing:run'")
    assert both.stderr.count("config error:") == 1 and "own_missing" in both.stderr, \
        "a handler that does not import is reported once, like a config error"


def test_findings_listed_like_ruff_and_exit_codes(examples: Path) -> None:
    done = cli("run", "lint", "--project", str(examples / "small"), cwd=examples / "small")
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "tinytools/batch_text.py:36:33: F821 Undefined name `STATUS_LABELS`",
        "tinytools/lease_events.py:5:23: F401 `functools.partial` imported but unused"]
    assert "Found 2 finding(s) in 2 file(s)." in done.stderr
    assert done.stderr.index("FineCode results") < done.stderr.index("Found 2 finding(s)")
    zero = cli("run", "lint", "--exit-zero", cwd=examples)
    assert zero.returncode == 0, zero.stderr
    listed = zero.stdout.splitlines()
    assert len(listed) == 10 and listed == sorted(listed), "grouped by file and sorted"
    assert listed[0].startswith("large/fleetops/api/ticket_parser.py:5:8: F401 ")
    assert cli("run", "stats", cwd=examples).returncode == 0, "no findings, no failure: 0"
    assert cli("run", "boom", "--exit-zero", "--project", str(WORKSPACE / "alpha")
               ).returncode == 1, "--exit-zero keeps failures"


def test_github_annotations(examples: Path) -> None:
    done = cli("run", "lint", "--output-format", "github", cwd=examples)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 10
    assert (f"::warning title=ruff (F401),file={examples}/small/tinytools/lease_events.py,"
            "line=5,col=23,endLine=5,endColumn=30::small/tinytools/lease_events.py:5:23: F401 "
            "`functools.partial` imported but unused") in lines


def test_lint_findings_equal_ruff_check(tmp_path: Path) -> None:
    """Excluded generated files, a nested ruff config and an unparsable file: same as ruff."""
    project = tmp_path / "proj"
    (project / "gen").mkdir(parents=True)
    (project / "sub").mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\n'
        'handlers = [{ source = "finecode_examples.ruff:lint" }]\n'
        '[tool.ruff]\nextend-exclude = ["gen/*_pb2.py"]\n'
        '[tool.ruff.lint]\nselect = ["E", "F"]\n')
    (project / "sub" / "pyproject.toml").write_text('[tool.ruff.lint]\nselect = ["E711"]\n')
    (project / "a.py").write_text("import os\n")
    (project / "gen" / "x_pb2.py").write_text("import sys\n")
    (project / "gen" / "kept.py").write_text("import sys\n")
    (project / "sub" / "m.py").write_text("import json\nx = None\nif x == None:\n    pass\n")
    (project / "bad.py").write_text("def f(:\n  pass\n")
    done = cli("run", "lint", "--json", "--workspace", str(tmp_path), cwd=tmp_path)
    (entry,) = json.loads(done.stdout)["results"]
    ours = sorted((d["path"], d["line"], d["column"], d["code"])
                  for d in entry["result"]["diagnostics"])
    ruff = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--no-cache",
                           "--output-format", "json", "."], cwd=project, capture_output=True,
                          text=True, timeout=30)
    theirs = sorted((Path(d["filename"]).relative_to(project).as_posix(),
                     d["location"]["row"], d["location"]["column"], d["code"])
                    for d in json.loads(ruff.stdout))
    assert ours == theirs
    assert {p for p, *_ in ours} == {"a.py", "bad.py", "gen/kept.py", "sub/m.py"}
    assert ("sub/m.py", 3, 9, "E711") in ours and not any(p == "sub/m.py" and c == "F401"
                                                          for p, _, _, c in ours)


def _lsp_frame(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def test_lsp_accepts_stdio_flag(tmp_path: Path) -> None:
    """vscode-languageclient appends `--stdio` (TransportKind.stdio): it must start the server."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "lsp", "--stdio"],
                          input=b"".join(map(_lsp_frame, messages)), cwd=tmp_path,
                          env=probe_env(), capture_output=True, timeout=50)
    assert b"unrecognized arguments" not in done.stderr, done.stderr
    assert done.returncode == 0, ("0 only after shutdown + exit", done.returncode, done.stderr)


def _pty_spawn(args: list[str], cwd: Path, columns: int,
               base: dict[str, str] | None = None) -> tuple[int, int]:
    """Start `finecode-wm` under a pseudo-terminal of `columns` (the window size, as a terminal
    sets it: no COLUMNS variable), as a person would; (pid, the terminal's fd)."""
    import pty

    env = (probe_env() if base is None else base) | {"TERM": "xterm"}
    for name in ("COLUMNS", "LINES"):
        env.pop(name, None)
    pid, fd = pty.fork()
    if pid == 0:  # child: size its terminal before anything draws on it
        _resize(0, columns)
        os.chdir(cwd)
        os.execvpe(sys.executable, [sys.executable, "-m", "finecode_wm", *args], env)
    return pid, fd


def _resize(fd: int, columns: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))


def _pty_read(runs: dict[str, tuple[int, int]], timeout: float = 45,
              at: dict[str, tuple[float, Callable[[int, int], None]]] | None = None
              ) -> dict[str, tuple[int, bytes]]:
    """Read every run's terminal until it closes; (exit code, raw output) per run. `at` calls
    `act(fd, bytes read so far)` once for a run, that many seconds in."""
    import select

    output = {name: b"" for name in runs}
    open_fds = {fd: name for name, (_, fd) in runs.items()}
    pending = dict(at or {})
    start = time.monotonic()
    while open_fds and time.monotonic() - start < timeout:
        for name, (after, act) in list(pending.items()):
            if time.monotonic() - start >= after:
                act(runs[name][1], len(output[name]))
                del pending[name]
        ready, _, _ = select.select(list(open_fds), [], [], 0.1)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk:
                output[open_fds[fd]] += chunk
            else:
                del open_fds[fd]
    done = {}
    for name, (pid, fd) in runs.items():
        if fd in open_fds:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        done[name] = (os.waitstatus_to_exitcode(status), output[name])
    return done


def _plain(raw: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", raw.decode(errors="replace"))  # styles


def _pty_run(args: list[str], cwd: Path, columns: int = 160,
             env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit code, plain text) of one run under a pseudo-terminal."""
    code, raw = _pty_read({"run": _pty_spawn(args, cwd, columns, env)})["run"]
    return code, _plain(raw)


BATCH_LINE = re.compile(r"^(FineCode: )?(sleepy|\S)\S*( \S+)*? +(?P<bar>[━╸╺]{10,}) +(\d+%)? "
                        r"\d:\d\d:\d\d( |$)")
STALLED_BATCH = re.compile(r" \d+% \d:\d\d:\d\d \d/2 stalled \d+ s")
ROW_LINE = re.compile(r"^  alpha · (sleepy|slow) +[━╸╺]{10,} +\d+% \d:\d\d:\d\d( |$)")


def test_tty_lays_out_for_80_110_and_200_columns_during_a_stall() -> None:
    """`sleepy` says one thing and is then silent for 7 s beside `slow`; four terminals at once
    (the last starts at 200 columns and is narrowed to 80 after 2 s): every frame of every
    width keeps the percentage, a bar of 10 cells or more, the elapsed time, the count and the
    stall mark, within the width."""
    alpha = WORKSPACE / "alpha"  # its own workspace: no broken neighbour printing errors
    args = ["run", "sleepy", "slow", "--workspace", str(alpha)]
    runs = {str(w): _pty_spawn(args, alpha, w) for w in (80, 110, 200)}
    runs["resized"] = _pty_spawn(args, alpha, 200)
    marks: dict[str, int] = {}

    def narrow(fd: int, read: int) -> None:
        _resize(fd, 80)
        marks["resized"] = read

    finished = _pty_read(runs, at={"resized": (2.0, narrow)})
    for name, (code, raw) in finished.items():
        text = _plain(raw[marks[name] + 4000:] if name == "resized" else raw)
        width = 80 if name == "resized" else int(name)
        assert code == 0 and "2 ok" in text, (name, text)
        lines = [line for line in re.split(r"[\r\n]+", text) if re.search("[━╸╺]", line)]
        for line in lines:
            assert cell_len(line) <= width, (name, line)
        # the batch line: its title, cut to `sleepy, slow` where even `FineCode: sleepy +1`
        # does not fit (80 columns)
        batch = [line for line in lines if not line.startswith("  ")]
        rows = [line for line in lines if line.startswith("  alpha · ")]
        assert batch and rows, (name, text)
        assert all(BATCH_LINE.search(line) for line in batch), (name, batch)
        assert all(ROW_LINE.search(line) for line in rows if "%" in line), (name, rows)
        stalled = [line for line in batch if STALLED_BATCH.search(line)]
        assert stalled, ("the count and stall mark on the batch line", name, batch)
        assert any(re.search(r"^  alpha · sleepy .* stalled [5-9] s dozing off", line)
                   for line in rows), (name, rows)
        if width == 200:
            assert any(line.endswith("stalled 6 s waiting on alpha · sleepy · estimate paused")
                       for line in stalled), stalled
            assert any(re.search(r" 0/2 slow · alpha: Waiting · ~\d+ s left$", line)
                       for line in batch), "the estimate, before the stall"
            assert any(line.startswith("FineCode: sleepy, slow ") for line in batch)
            assert "stalled 5 s" in text and "stalled 6 s" in text, "counting up"


def test_plain_lines_carry_stall_and_estimate_and_history_is_kept() -> None:
    done = cli("run", "sleepy", "count", "--project", str(WORKSPACE / "alpha"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any("waiting on alpha · sleepy (5 s without progress)" in line for line in lines)
    assert any("waiting on alpha · sleepy (6 s without progress)" in line for line in lines)
    assert any(re.search(r"\d+% .* · ~\d+ s left", line) for line in lines), done.stderr
    kept = json.loads((CACHE / "finecode" / "history.json").read_text())
    timed = {(p, a): s for p, a, _signed, s, _total in kept["entries"]}
    assert timed[(str(WORKSPACE / "alpha"), "sleepy")] >= 7


def test_failed_runs_are_recorded_and_a_changed_config_replaces_its_timing(
        tmp_path: Path) -> None:
    """The history file after a run with an always-failing child, and after the handler's
    config changed (per-file delay 0.01 → 0.08 s): the new timing replaces the old one."""
    project = tmp_path / "ws" / "d"
    project.mkdir(parents=True)
    toml = project / "pyproject.toml"
    toml.write_text("[tool.finecode.actions.files]\nhandlers = [{ source = "
                    "\"probe_handlers:units\", config = { total = 8, steps = 8, delay = 0.01 } }]\n"
                    "[tool.finecode.actions.broken]\n"
                    "handlers = [{ source = \"probe_handlers:boom\" }]\n")
    env = probe_env() | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    kept = tmp_path / "cache" / "finecode" / "history.json"

    def run(*actions: str) -> int:
        return subprocess.run([sys.executable, "-m", "finecode_wm", "run", *actions,
                               "--workspace", str(project.parent)], env=env,
                              capture_output=True, text=True, timeout=50).returncode

    def entries() -> dict[str, tuple[str, float, float | None]]:
        return {a: (signed, seconds, total)
                for _, a, signed, seconds, total in json.loads(kept.read_text())["entries"]}

    assert run("files", "broken") == 1
    first = entries()
    assert set(first) == {"files", "broken"}, "the failed run is recorded too"
    assert first["broken"][2] == 3 and first["files"][2] == 8
    toml.write_text(toml.read_text().replace("delay = 0.01", "delay = 0.08"))
    assert run("files") == 0
    signed, seconds, total = entries()["files"]
    assert signed != first["files"][0] and total == 8
    assert seconds >= 8 * 0.08, "replaced by the new run's time, not smoothed with the old"
