"""The terminal front end as a user runs it: `finecode-wm run` / `list`, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

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
    assert result["summary"] == {"ok": 1, "failed": 0, "cancelled": 0}
    (entry,) = result["results"]
    assert entry["action"] == "lint" and entry["result"]["count"] == 2


def test_failures_exit_1_and_bad_input_exits_2() -> None:
    failed = cli("run", "boom")
    assert failed.returncode == 1
    assert "ValueError: the widget is broken" in failed.stderr
    unknown = cli("run", "nope")
    assert unknown.returncode == 2 and "unknown action 'nope'" in unknown.stderr
    assert "config error:" in unknown.stderr and "broken" in unknown.stderr
    assert "[tool.finecode.actions.lint.handlers" in unknown.stderr.replace("]", ""), \
        "brackets in messages are printed, not read as markup"


def test_list(examples: Path) -> None:
    done = cli("list", "--json", cwd=examples)
    assert done.returncode == 0
    assert [p["name"] for p in json.loads(done.stdout)] == ["large", "medium", "small"]
    plain = cli("list", cwd=examples)
    actions = "[check, discover_tests, format, lint, prepare_env, stats, test]"
    assert "small" in plain.stdout and actions in plain.stdout, plain.stdout
    assert cli("list").returncode == 1, "a broken config is an error for `list`"


def test_ctrl_c_cancels_children_and_exits_130() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "finecode_wm", "run", "slow", "quiet"],
                            cwd=WORKSPACE, env=probe_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    runners: list[int] = []
    deadline = time.monotonic() + 20
    while len(runners) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        runners = [p.pid for p in psutil.Process(proc.pid).children()]
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
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
    assert both.returncode == 1
    where, broken = json.loads(both.stdout)["results"]
    assert where["status"] == "ok" and broken["status"] == "failed"
    assert broken["errorData"]["kind"] == "import"
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
    assert cli("run", "boom", "--exit-zero").returncode == 1, "--exit-zero keeps failures"


def test_github_annotations(examples: Path) -> None:
    done = cli("run", "lint", "--output-format", "github", cwd=examples)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 10
    assert ("::warning file=small/tinytools/lease_events.py,line=5,col=23,endLine=5,"
            "endColumn=30,title=F401::`functools.partial` imported but unused") in lines


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


def _pty_run(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run `finecode-wm` under a pseudo-terminal, as a person would; (exit code, plain text)."""
    import pty

    env = probe_env() | {"COLUMNS": "160", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        os.execvpe(sys.executable, [sys.executable, "-m", "finecode_wm", *args], env)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", output.decode(errors="replace"))  # styles
    return os.waitstatus_to_exitcode(status), text


def test_tty_live_rows_show_running_children_and_mark_a_stall() -> None:
    code, text = _pty_run(["run", "sleepy", "slow", "--project", str(WORKSPACE / "alpha")],
                          WORKSPACE)
    assert code == 0, text
    assert "alpha · sleepy" in text, "a row per running child"
    assert re.search(r"alpha · slow +\S+ +[1-9]\d?% ", text), "with its own bar and percentage"
    assert "stalled 5 s" in text and "stalled 6 s" in text, "the stalled row is marked"
    assert re.search(r"~\d+ s left", text), "the estimate of the time left"
    assert "2 ok" in text


def test_plain_lines_carry_stall_and_estimate_and_history_is_kept() -> None:
    done = cli("run", "sleepy", "count", "--project", str(WORKSPACE / "alpha"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any("waiting on alpha · sleepy (5 s without progress)" in line for line in lines)
    assert any("waiting on alpha · sleepy (6 s without progress)" in line for line in lines)
    assert any(re.search(r"\d+% .* · ~\d+ s left", line) for line in lines), done.stderr
    kept = json.loads((CACHE / "finecode" / "history.json").read_text())
    timed = {(p, a): s for p, a, s in kept["entries"]}
    assert timed[(str(WORKSPACE / "alpha"), "sleepy")] >= 7
