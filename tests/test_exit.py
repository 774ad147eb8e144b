"""A terminal command ends without tearing the interpreter down (`main._exit_now`), with all it
printed flushed and its exit code; under a profiler or tracer the usual way out is kept, so
their data is written at exit."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from .conftest import probe_env

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import atexit, sys
atexit.register(lambda: print("atexit ran", file=sys.stderr))
if sys.argv[1] == "profiled":
    sys.setprofile(lambda *args: None)
from finecode_wm.main import main
main(["list", "--workspace", sys.argv[2]])
"""


def list_in(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\n\n[tool.finecode.actions.lint]\n'
            'handlers = [{ source = "checks:run" }]\n')
    return subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path)],
                          env=probe_env(), capture_output=True, text=True, timeout=50,
                          check=False)


def test_a_command_exits_at_once_with_its_output_and_code(tmp_path: Path) -> None:
    done = list_in(tmp_path, "plain")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[-2:]] == ["alpha", "beta"]
    assert "atexit ran" not in done.stderr, "the interpreter was not torn down"


def test_under_a_profiler_the_usual_way_out_is_kept(tmp_path: Path) -> None:
    done = list_in(tmp_path, "profiled")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[-2:]] == ["alpha", "beta"]
    assert "atexit ran" in done.stderr


def lint_into(tmp_path: Path, handler: str, stdout: IO[str], *args: str,
              preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """`finecode-wm run lint ARGS` on one project whose lint is `probe_handlers:HANDLER`, its
    stdout into `stdout`, its cache under `tmp_path/cache`."""
    project = tmp_path / "ws" / "alpha"
    project.mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "alpha"\n\n[tool.finecode.actions.lint]\n'
        f'handlers = [{{ source = "probe_handlers:{handler}" }}]\n')
    env = {**probe_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "finecode_wm", "run", "lint", *args,
                           "--workspace", str(tmp_path / "ws")], env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=50, check=False,
                          preexec_fn=preexec_fn)


def test_a_run_whose_output_cannot_be_written_still_keeps_its_history(tmp_path: Path) -> None:
    """stdout on a full disk (`/dev/full`): the run happened, so the times it measured are kept
    for the next run's progress bar and `--shard` split."""
    with open("/dev/full", "w") as full:
        done = lint_into(tmp_path, "quiet", full, "--json")
    assert done.returncode != 0, done.stderr
    assert (tmp_path / "cache" / "finecode" / "history.json").is_file(), done.stderr


@pytest.mark.parametrize("output", [["--json"], ["--output-format", "github"], []],
                         ids=["json", "github", "text"])
def test_an_output_that_cannot_be_written_is_said_and_fails_the_run(
        tmp_path: Path, output: list[str]) -> None:
    """A full disk under stdout: one line says so and the run exits 2 (as a broken config does,
    also with `--exit-zero`), never a traceback that reads like a crash, nor a findings-only 1."""
    with open("/dev/full", "w") as full:
        done = lint_into(tmp_path, "findings", full, "--exit-zero", *output)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert "error: cannot write the output: No space left on device" in done.stderr
    assert done.returncode == 2, done.stderr


def test_an_output_the_system_takes_only_in_part_is_said_and_fails_the_run(
        tmp_path: Path) -> None:
    """A disk that fills up mid-output (here: a file size limit): the system takes the first
    bytes of a write and refuses the rest. Python's buffered writer would drop the rest and
    report success; every byte is accounted for instead, and the cut output fails the run."""
    limit = 400  # the run's JSON (~850 bytes) is longer than this

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG

    out = tmp_path / "out.json"
    with out.open("w") as file:
        done = lint_into(tmp_path, "findings", file, "--exit-zero", "--json",
                         preexec_fn=limited)
    assert out.stat().st_size == limit, "the output was cut (else this test proves nothing)"
    assert "error: cannot write the output: File too large" in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
