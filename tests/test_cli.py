"""The terminal front end as a user runs it: `finecode-wm run` / `list`, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from .conftest import CACHE, WORKSPACE, probe_env
from .rules import gone

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).parent.parent / "examples" / "workspace"


def cli(*args: str, cwd: Path = WORKSPACE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finecode_wm", *args], cwd=cwd,
                          env=probe_env(), capture_output=True, text=True, timeout=50)


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the example workspace, so runs never write into the repository."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "workspace"))


def test_run_examples_plain_output_and_table(examples: Path) -> None:
    done = cli("run", "lint", "stats", cwd=examples)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "FineCode: lint, stats" in lines[0] and "0%" in lines[0]
    assert any("100%" in line for line in lines), done.stderr
    assert any(line.strip().endswith("6 ok") for line in lines), done.stderr
    assert "FineCode results" in done.stderr and "count=5" in done.stderr


def test_run_json_is_the_lsp_result_shape(examples: Path) -> None:
    done = cli("run", "lint", "--json", "--project", str(examples / "small"), cwd=examples)
    assert done.returncode == 0, done.stderr
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
    assert "small" in plain.stdout and "[format, lint, stats]" in plain.stdout, plain.stdout
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
    assert "config error:" in done.stderr and "own_missing" in done.stderr, \
        "a handler that does not import is reported at start, like a config error"


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
