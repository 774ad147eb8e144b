"""`finecode-wm run` as a ruff user runs it: the output formats (GitHub byte for byte against the
real `ruff check`, SARIF against the schema), --quiet, --statistics, --fail-on, runs on paths,
the workspace found upward, and the messages a person reads when something is wrong."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from .conftest import copy_examples, probe_env

pytestmark = pytest.mark.timeout(90)

RUFF = str(Path(sys.executable).parent / "ruff")
SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "schemas" /
                     "sarif-2.1.0-rtm.5.json").read_text())


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finecode_wm", *args], cwd=cwd,
                          env=env or probe_env(), capture_output=True, text=True, timeout=80)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the example workspace for the read-only runs of this module."""
    return copy_examples(tmp_path_factory.mktemp("cli-output") / "workspace")


# -- GitHub annotations: byte for byte as ruff prints them ----------------------------------


def test_github_lines_equal_ruffs_from_the_root_and_from_a_subdirectory(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sub = repo / "proj" / "sub"
    sub.mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / "proj" / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\n'
        'handlers = [{ source = "finecode_examples.ruff:lint", '
        'config = { select = ["F"], severity = "error" } }]\n')
    (sub / "a.py").write_text("x = undefined_name\n")
    (sub / "b.py").write_text("def f():\n    return (\n        undefined_too\n    )\n")
    for cwd, target in ((repo, "proj"), (sub, ".")):
        ruff = subprocess.run([RUFF, "check", "--no-cache", "--select", "F", "--output-format",
                               "github", target], cwd=cwd, capture_output=True, text=True,
                              timeout=30)
        ours = cli("run", "lint", "--output-format", "github", cwd=cwd)
        assert ours.returncode == 1, ours.stderr
        theirs = sorted(ruff.stdout.splitlines())
        assert len(theirs) == 2 and theirs == sorted(ours.stdout.splitlines()), (cwd, ours.stdout)
    assert ("::error title=ruff (F821),file=" + str(sub / "a.py") +
            ",line=1,col=5,endLine=1,endColumn=19::a.py:1:5: F821 Undefined name "
            "`undefined_name`") in theirs


def test_github_annotates_failures_and_config_errors(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\nhandlers = [{ source = "probe_handlers:boom" }]\n')
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\nhandlers = [{ source = "x:y", colour = 1 }]\n')
    done = cli("run", "lint", "--output-format", "github", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    config, failure = done.stdout.splitlines()
    assert config.startswith(f"::error title=FineCode (config error),file={tmp_path}/bad/"
                             "pyproject.toml::") and "unknown key(s) colour" in config
    assert failure.startswith("::error title=FineCode (ok · lint failed)::handler "
                              "'probe_handlers:boom' failed: ValueError: the widget is broken"), \
        failure


# -- SARIF, JSON lines, statistics, quiet -----------------------------------------------------


def test_sarif_of_a_real_run_validates_and_points_into_the_repository(examples: Path) -> None:
    done = cli("run", "lint", "--output-format", "sarif", cwd=examples / "small")
    assert done.returncode == 1, done.stderr
    log = json.loads(done.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    (run,) = log["runs"]
    uris = sorted(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                  for r in run["results"])
    assert uris == ["tinytools/batch_text.py", "tinytools/lease_events.py"], \
        "relative to the workspace folder (no git here)"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == (examples / "small").as_uri() + "/"


def test_json_lines_statistics_and_quiet(examples: Path) -> None:
    lines = cli("run", "lint", "--output-format", "json-lines", cwd=examples)
    found = [json.loads(line) for line in lines.stdout.splitlines()]
    assert len(found) == 10 and all(f["filename"].startswith(str(examples)) for f in found)
    assert {f["code"] for f in found} == {"F401", "F821"}
    stats = cli("run", "lint", "--statistics", cwd=examples)
    assert stats.returncode == 1
    assert stats.stdout.splitlines() == ["6  F401  warning", "4  F821  warning"]
    quiet = cli("run", "lint", "-q", cwd=examples / "small")
    assert quiet.returncode == 1 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.splitlines() == [
        "tinytools/batch_text.py:36:33: F821 Undefined name `STATUS_LABELS`",
        "tinytools/lease_events.py:5:23: F401 `functools.partial` imported but unused"]
    for other in (["--output-format", "github"], ["--json"]):
        wrong = cli("run", "lint", "--statistics", *other, cwd=examples)
        assert wrong.returncode == 2 and "text format only" in wrong.stderr, other
        assert wrong.stdout == "", other
    sharded = cli("run", "lint", "-q", "--shard", "1/1", cwd=examples / "small")
    assert sharded.stderr == "" and sharded.stdout == quiet.stdout, "-q: no --shard note"


def test_paths_and_options_in_any_order(examples: Path) -> None:
    """As ruff takes them: `run lint -q small/tinytools` is `run -q lint small/tinytools`."""
    expected = ["small/tinytools/batch_text.py:36:33: F821 Undefined name `STATUS_LABELS`",
                "small/tinytools/lease_events.py:5:23: F401 `functools.partial` imported but "
                "unused"]
    for words in (["lint", "-q", "small/tinytools"], ["-q", "lint", "small/tinytools"],
                  ["lint", "small/tinytools", "-q"]):
        done = cli("run", *words, cwd=examples)
        assert (done.returncode, done.stdout.splitlines()) == (1, expected), (words, done.stderr)
    both = cli("run", "lint", "--project", "small", "small/tinytools", cwd=examples)
    assert both.returncode == 2 and "give --project or paths, not both" in both.stderr
    for words in (["run", "lint", "--bogus", "small"], ["list", "extra"]):
        wrong = cli(*words, cwd=examples)
        assert wrong.returncode == 2 and "unrecognized arguments" in wrong.stderr, words


# -- runs on paths, and the workspace found upward ------------------------------------------


def test_run_on_paths_runs_the_owning_projects_on_those_paths(examples: Path) -> None:
    one = cli("run", "lint", "small/tinytools/batch_text.py", "medium", cwd=examples)
    assert one.returncode == 1, one.stderr
    listed = one.stdout.splitlines()
    assert listed[-1] == "small/tinytools/batch_text.py:36:33: F821 Undefined name " \
                         "`STATUS_LABELS`"
    assert sum(line.startswith("medium/") for line in listed) == 3, "medium: all of it"
    assert "files=1 " in one.stderr and "files=21 " in one.stderr
    assert "large" not in one.stderr.split("FineCode results")[1]
    clean = cli("run", "lint", "stats", "small/tests", cwd=examples)
    assert clean.returncode == 0, clean.stderr
    missing = cli("run", "lint", "small/nope.py", cwd=examples)
    assert missing.returncode == 2 and "small/nope.py does not exist" in missing.stderr
    both = cli("run", "lint", "small", "--project", "medium", cwd=examples)
    assert both.returncode == 2 and "give --project or paths, not both" in both.stderr


def test_a_path_in_no_project_and_an_unknown_word(tmp_path: Path) -> None:
    workspace = copy_examples(tmp_path / "ws")
    (workspace / "docs").mkdir()
    done = cli("run", "lint", "docs", cwd=workspace)
    assert done.returncode == 2
    assert f"{workspace / 'docs'} is in no FineCode project and holds none" in done.stderr
    unknown = cli("run", "lint", "nope", cwd=workspace)
    assert unknown.returncode == 2 and "unknown action 'nope'" in unknown.stderr


def test_the_workspace_is_found_upward_from_a_subdirectory(examples: Path) -> None:
    done = cli("run", "lint", cwd=examples / "small" / "tinytools")
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "batch_text.py:36:33: F821 Undefined name `STATUS_LABELS`",
        "lease_events.py:5:23: F401 `functools.partial` imported but unused"]
    listed = cli("list", cwd=examples / "large" / "fleetops" / "api")
    assert listed.returncode == 0 and listed.stdout.splitlines()[-1].startswith(
        f"large  {examples / 'large'}  ")  # the only project there: nothing to align with


def test_a_missing_workspace_folder_says_so(tmp_path: Path) -> None:
    """`list`, `run` and `mcp` (whose server must not start on nothing) exit 2, naming it."""
    (tmp_path / "file").write_text("")
    for command in ("list", "run", "mcp"):
        args = ["lint"] if command == "run" else []
        for folder, why in ((tmp_path / "nope", "does not exist"),
                            (tmp_path / "file", "is not a directory")):
            done = cli(command, *args, "--workspace", str(folder), cwd=tmp_path)
            assert done.returncode == 2, (command, done.stderr)
            assert f"workspace folder {folder} {why}" in done.stderr, (command, done.stderr)
            assert "untrusted" not in done.stdout + done.stderr


# -- severities and --fail-on -----------------------------------------------------------------

LEVELLED = '''
async def one(params, ctx):
    return {"diagnostics": [{"path": "a.py", "line": 1, "column": 1, "message": "m",
                             "severity": ctx.config["severity"]}]}
'''


@pytest.mark.parametrize(("severity", "fail_on", "code"), [
    ("error", "warning", 1), ("warning", "warning", 1), ("information", "warning", 0),
    ("hint", "warning", 0), ("information", "information", 1), ("hint", "information", 0),
    ("hint", "hint", 1), ("warning", "error", 0), ("error", "error", 1)])
def test_fail_on(tmp_path: Path, severity: str, fail_on: str, code: int) -> None:
    (tmp_path / "levels.py").write_text(LEVELLED)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\n'
        f'handlers = [{{ source = "levels:one", config = {{ severity = "{severity}" }} }}]\n')
    done = cli("run", "lint", "--fail-on", fail_on, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stdout == "a.py:1:1: m\n"


# -- messages -----------------------------------------------------------------------------------

CHECKS = '''\
import missing_dependency_xyz


async def run(params, ctx):
    return {}
'''
DELEGATES = '''\
async def run(params, ctx):
    return await ctx.run_action("no_such_action")


async def wordy(params, ctx):
    raise RuntimeError("the configured widget " + "cannot be found anywhere " * 8)
'''
DOUBLE = '''\
async def run(params, ctx):
    return {"files": 1, "diagnostics": [{"path": "a.py", "line": 1, "column": 1,
                                         "message": "same", "code": "X"}]}
'''


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("messages")
    (root / "imports").mkdir()
    (root / "imports" / "checks.py").write_text(CHECKS)
    (root / "imports" / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\nhandlers = [{ source = "checks:run" }]\n')
    (root / "delegates").mkdir()
    (root / "delegates" / "delegating_checks.py").write_text(DELEGATES)
    (root / "delegates" / "pyproject.toml").write_text(
        '[tool.finecode.actions.check]\n'
        'handlers = [{ source = "delegating_checks:run" }]\n'
        '[tool.finecode.actions.wordy]\n'
        'handlers = [{ source = "delegating_checks:wordy" }]\n')
    (root / "bare").mkdir()
    (root / "bare" / "pyproject.toml").write_text(
        '[tool.finecode]\npython = "python3"\n'
        '[tool.finecode.actions.stats]\n'
        'handlers = [{ source = "finecode_examples.stats:stats" }]\n')
    (root / "twice").mkdir()
    (root / "twice" / "double.py").write_text(DOUBLE)
    (root / "twice" / "pyproject.toml").write_text(
        '[tool.finecode.actions.lint]\nhandlers = [{ source = "double:run" }]\n'
        '[tool.finecode.actions.again]\nhandlers = [{ source = "double:run" }]\n')
    return root


def test_an_import_failure_names_the_interpreter_and_search_path_once(messages: Path) -> None:
    done = cli("run", "lint", "--project", "imports", "--json", cwd=messages)
    assert done.returncode == 2
    (problem,) = json.loads(done.stdout)["config_errors"]
    error = problem["error"]
    assert "ModuleNotFoundError: No module named 'missing_dependency_xyz'" in error
    assert f"(at {messages / 'imports' / 'checks.py'}:1 in <module>)" in error
    assert f"interpreter {sys.executable} looked in the project root " \
           f"{messages / 'imports'}, then sys.path: " in error
    assert "frozen" not in error
    text = cli("run", "lint", "--project", "imports", cwd=messages)
    assert text.stderr.count("missing_dependency_xyz") == 2, ("the table's cut detail and the "
                                                             "config error line", text.stderr)
    assert text.stderr.count("config error:") == 1


def test_delegation_errors_point_at_the_handlers_line(messages: Path) -> None:
    done = cli("run", "check", "--project", "delegates", "--json", cwd=messages)
    (entry,) = json.loads(done.stdout)["results"]
    assert entry["status"] == "failed"
    assert entry["error"].startswith("handler 'delegating_checks:run' failed: DelegationError: "
                                     "unknown action 'no_such_action'")
    assert entry["error"].endswith(
        f"(at {messages / 'delegates' / 'delegating_checks.py'}:2 in run)"), entry["error"]


def _table_row(stderr: str, action: str) -> list[str]:
    """The summary table's row of `action`: project, action, status, time, detail (columns are
    aligned with two spaces or more)."""
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=4) for line in stderr.splitlines()]
    (row,) = [r for r in rows if len(r) == 5 and r[1] == action]
    return row


def test_details_are_cut_at_a_word(messages: Path) -> None:
    done = cli("run", "wordy", "--project", "delegates", cwd=messages,
               env=probe_env() | {"COLUMNS": "400"})
    detail = _table_row(done.stderr, "wordy")[4]
    full = "handler 'delegating_checks:wordy' failed: RuntimeError: the configured widget " + \
        "cannot be found anywhere " * 8
    assert detail.endswith("…") and len(detail) <= 100, detail
    assert full.startswith(detail[:-1] + " "), "cut before a space, not inside a word"


def test_a_bare_interpreter_name_is_explained(messages: Path) -> None:
    done = cli("run", "stats", "--project", "bare", "--json", cwd=messages)
    (entry,) = json.loads(done.stdout)["results"]
    assert entry["status"] == "failed"
    assert f"cannot start a runner with {messages / 'bare' / 'python3'}" in entry["error"]
    assert "a bare name such as python3 is not looked up on PATH" in entry["error"]


def test_footer_agrees_with_the_table(messages: Path) -> None:
    done = cli("run", "lint", "again", "--project", "twice", cwd=messages)
    assert done.stdout == "twice/a.py:1:1: X same\n"
    assert done.stderr.count("findings=1") == 2, done.stderr
    assert "Found 1 finding(s) in 1 file(s) (2 in the table: 1 reported by more than one " \
           "action, listed once)." in done.stderr


def test_check_row_has_a_detail(examples: Path) -> None:
    done = cli("run", "check", "--project", "small", cwd=examples,
               env=probe_env() | {"COLUMNS": "200"})
    assert _table_row(done.stderr, "check")[4] == "actions=3 findings=3", done.stderr


def test_changed_trust_names_the_project_and_file(tmp_path: Path) -> None:
    workspace = copy_examples(tmp_path / "ws")
    env = probe_env() | {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    assert cli("trust", str(workspace), cwd=tmp_path, env=env).returncode == 0
    with (workspace / "small" / "tinytools" / "batch_text.py").open("a") as edited:
        edited.write("# edited\n")
    (workspace / "medium" / "orderdesk" / "new_module.py").write_text("")
    done = cli("list", cwd=workspace, env=env)
    assert f"folder {workspace}: changed" in done.stdout
    assert ("  changed since trusted: medium/orderdesk/new_module.py added (project medium); "
            "small/tinytools/batch_text.py changed (project small)") in done.stdout.splitlines()
    os.remove(workspace / "medium" / "orderdesk" / "new_module.py")


def test_list_aligns_its_columns(examples: Path) -> None:
    done = cli("list", cwd=examples)
    rows = [line for line in done.stdout.splitlines() if not line.startswith("folder ")]
    assert [row.split()[0] for row in rows] == ["large", "medium", "small"], done.stdout
    assert len({row.index(str(examples)) for row in rows}) == 1, done.stdout
    assert len({row.index("[") for row in rows}) == 1, done.stdout
