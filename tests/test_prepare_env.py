"""The example `prepare_env` handler (uv), offline on tiny local wheels: per-phase progress, a
second run that is "up to date" at once, updates and removals, a lock file, cancellation that
leaves no uv behind; and, through the terminal, a project whose `python` is the venv it makes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from finecode_examples import envs
from finecode_examples.envs import Settings, parse_pins
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_er.config import ConfigError, parse_actions
from finecode_wm.workspace import Environment, Project

from .conftest import probe_env
from .generated import Recorded, offline_uv, tiny_index

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_index(tmp_path_factory.mktemp("wheels"), count=40)


@pytest.fixture
def offline(wheels: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """uv, as the handler runs it in this process, reaches only the tiny wheels."""
    settings = offline_uv(wheels, tmp_path / "uv-cache")
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    yield settings
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_project(root: Path, dependencies: list[str], extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "proj"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f"dependencies = {json.dumps(dependencies)}\n{extra}")
    return root


async def prepare(root: Path, **config: Any) -> tuple[dict[str, Any], Recorded, float]:
    recorded = Recorded(root, "prepare_env", {"batch_size": 1, **config})
    begun = time.monotonic()
    try:
        result = await envs.prepare_env({}, recorded.ctx)
    finally:
        recorded.end()
    return result, recorded, time.monotonic() - begun


def venv_packages(root: Path) -> dict[str, str]:
    python = root / ".venv" / "bin" / "python"
    done = subprocess.run([*envs.uv_command(), "pip", "list", "--python", str(python),
                           "--format", "json"], capture_output=True, text=True, timeout=30,
                          check=True)
    return {p["name"]: p["version"] for p in json.loads(done.stdout)}


async def test_a_project_without_dependencies_says_so(tmp_path: Path,
                                                      offline: dict[str, str]) -> None:
    root = make_project(tmp_path / "p", [])
    result, _, _ = await prepare(root)
    assert result["created"] and result["installed"] == []
    assert result["summary"] == "created .venv, no dependencies to install"


async def test_first_run_creates_the_venv_with_per_phase_progress_then_up_to_date(
        tmp_path: Path, offline: dict[str, str]) -> None:
    root = make_project(tmp_path / "p", ["tiny-a", "tiny-c"])
    result, recorded, _ = await prepare(root)
    assert result["created"] and not result["up_to_date"] and result["source"] == "pyproject.toml"
    assert sorted(result["installed"]) == ["tiny-a", "tiny-b", "tiny-c"]
    assert result["summary"] == "created .venv, 3 of 3 packages installed"
    assert venv_packages(root) == {"tiny-a": "1.0", "tiny-b": "1.2", "tiny-c": "0.3"}
    # Resolve: no percentage, no units, a narrative; then the packages are the units.
    assert recorded.values[0]["kind"] == "begin" and "percentage" not in recorded.values[0]
    narrated = [v.get("message") for v in recorded.before_total()]
    assert "creating .venv" in narrated and "resolving dependencies (pyproject.toml)" in narrated
    assert [done for _total, done in recorded.totals()] == [0, 0, 1, 2, 3, 3]
    assert {total for total, _done in recorded.totals()} == {3}

    again, recorded, seconds = await prepare(root)
    assert again["up_to_date"] and again["summary"] == "up to date"
    assert seconds < 0.5, f"an up-to-date venv costs {seconds:.3f} s"
    assert recorded.totals() == [(0, 0), (0, 0)], "nothing to do is done work"


async def test_changes_are_applied_and_a_hand_removed_package_comes_back(
        tmp_path: Path, offline: dict[str, str]) -> None:
    root = make_project(tmp_path / "p", ["tiny-a"])
    await prepare(root)
    make_project(root, ["tiny-c"], extra='\n[tool.ruff]\nline-length = 88\n')
    changed, _, _ = await prepare(root)
    assert changed["installed"] == ["tiny-c"] and changed["removed"] == ["tiny-a", "tiny-b"]
    assert venv_packages(root) == {"tiny-c": "0.3"}
    make_project(root, ["tiny-c"], extra='\n[tool.ruff]\nline-length = 100\n')
    unrelated, _, _ = await prepare(root)
    assert unrelated["up_to_date"], "editing another tool's settings changes nothing"
    subprocess.run([*envs.uv_command(), "pip", "uninstall", "--python",
                    str(root / ".venv/bin/python"), "tiny-c"], check=True, capture_output=True,
                   timeout=30)
    repaired, _, _ = await prepare(root)
    assert repaired["installed"] == ["tiny-c"] and not repaired["created"]


async def test_a_lock_file_is_used_as_it_is(tmp_path: Path, offline: dict[str, str]) -> None:
    root = make_project(tmp_path / "p", ["tiny-c"],
                        extra='\n[dependency-groups]\ndev = ["tiny-a"]\n')
    subprocess.run([*envs.uv_command(), "lock"], cwd=root, check=True, capture_output=True,
                   timeout=30)
    result, _, _ = await prepare(root, groups=["dev"])
    assert result["source"] == "uv.lock"
    assert venv_packages(root) == {"tiny-a": "1.0", "tiny-b": "1.2", "tiny-c": "0.3"}
    without_group, _, _ = await prepare(root)
    assert without_group["removed"] == ["tiny-a", "tiny-b"], "the config is an input too"


async def test_cancel_mid_install_leaves_no_uv_and_the_next_run_finishes(
        tmp_path: Path, offline: dict[str, str]) -> None:
    root = make_project(tmp_path / "p", [f"tiny-pkg-{n}" for n in range(40)])
    recorded = Recorded(root, "prepare_env", {"batch_size": 1})
    task = asyncio.ensure_future(envs.prepare_env({}, recorded.ctx))
    for _ in range(600):
        if any(done >= 3 for _total, done in recorded.totals()) or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), "installed everything before the cancel"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorded.end("cancelled")
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.name() == "uv"]
    assert leftovers == []
    assert not json.loads((root / ".venv" / envs.STAMP).read_text()).get("key"), \
        "a cancelled run is not stamped as done"
    finished, _, _ = await prepare(root)
    assert not finished["up_to_date"] and not finished["created"]
    assert len(venv_packages(root)) == 40


async def test_a_directory_that_is_not_a_venv_is_refused(tmp_path: Path,
                                                         offline: dict[str, str]) -> None:
    root = make_project(tmp_path / "p", [])
    (root / ".venv").mkdir()
    (root / ".venv" / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="is not a virtual environment"):
        await prepare(root)
    assert (root / ".venv" / "notes.txt").read_text() == "mine"


def test_settings_are_checked() -> None:
    assert Settings.parse({}) == Settings()
    for bad in ({"venv": "/abs"}, {"venv": "../up"}, {"extras": "x"}, {"groups": ["--all"]},
                {"batch_size": 0}, {"python": 3}, {"nope": 1}):
        with pytest.raises(ValueError):
            Settings.parse(bad)


def test_pins_from_uv_output() -> None:
    pins = parse_pins("# header\ntiny-a==1.0\nTiny_B[x]==1.2 ; python_version >= '3'\n"
                      "--index-url https://example.invalid/simple\n\n"
                      "-e ./libs/local\nthing @ file:///tmp/thing.whl  # via x\n")
    assert [(p.name, p.version) for p in pins] == [
        ("tiny-a", "1.0"), ("tiny-b", "1.2"), (None, None), (None, None)]
    assert pins[2].args == ("-e", "./libs/local")
    assert pins[0].satisfied_by({"tiny-a": "1.0"}) and not pins[0].satisfied_by({"tiny-a": "2"})
    assert not pins[3].satisfied_by({"thing": "1"}), "a URL is always installed"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=20))
def test_pins_never_fail_on_any_text(lines: list[str]) -> None:
    pins = parse_pins("\n".join(lines))
    assert all(pin.args for pin in pins)
    assert envs.environment_key({"lines": lines}) == envs.environment_key({"lines": list(lines)})


def test_only_finecode_is_an_action_interpreter(tmp_path: Path) -> None:
    actions = parse_actions({"prepare_env": {"python": "finecode", "handlers": [
        {"source": "finecode_examples.envs:prepare_env"}]}}, "p")
    assert actions["prepare_env"].python == "finecode"
    assert "python" not in actions["prepare_env"].to_json(), "the runner never needs it"
    actions |= parse_actions({"test": {"handlers": [{"source": "m:f"}]}}, "p")
    venv = str(tmp_path / ".venv/bin/python")
    for isolated in (False, True):
        project = Project(tmp_path, "p", venv, actions, isolated)
        assert project.environment_for("test") == project.environment
        assert project.environment_for("prepare_env") == \
            Environment(sys.executable, tmp_path if isolated else None)
    with pytest.raises(ConfigError, match="'python' can only be \"finecode\""):
        parse_actions({"x": {"python": ".venv/bin/python", "handlers": [{"source": "m:f"}]}},
                      "p")


# -- through the terminal: the chicken and the egg ---------------------------------------------

WHERE = """import sys

import tiny_a


async def where(params, ctx):
    return {"prefix": sys.prefix, "tiny_a": tiny_a.VERSION}
"""


def test_a_project_whose_python_is_the_venv_prepare_env_makes(tmp_path: Path,
                                                              wheels: Path) -> None:
    root = make_project(tmp_path / "ws" / "app", ["tiny-a"], extra="""
[tool.finecode]
python = ".venv/bin/python"

[tool.finecode.actions.prepare_env]
python = "finecode"   # the venv does not exist before this action made it
handlers = [{ source = "finecode_examples.envs:prepare_env" }]

[tool.finecode.actions.where]
handlers = [{ source = "where:where" }]
""")
    (root / "where.py").write_text(WHERE)
    env = {**probe_env(), **offline_uv(wheels, tmp_path / "uv-cache")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "finecode_wm", "run", *args, "--workspace",
                               str(tmp_path / "ws")], env=env, capture_output=True, text=True,
                              timeout=50)

    before = cli("where")
    assert before.returncode == 1 and "cannot start a runner" in before.stderr, before.stderr
    made = cli("prepare_env", "--json")
    assert made.returncode == 0, made.stderr
    (entry,) = json.loads(made.stdout)["results"]
    assert entry["result"]["created"] and entry["result"]["python"] == ".venv/bin/python"
    where = cli("where", "--json")
    assert where.returncode == 0, where.stderr
    (entry,) = json.loads(where.stdout)["results"]
    assert entry["result"] == {"prefix": str(root / ".venv"), "tiny_a": "1.0"}
    again = cli("prepare_env", "--json")
    (entry,) = json.loads(again.stdout)["results"]
    assert entry["result"]["up_to_date"] and entry["seconds"] < 1.0, entry
