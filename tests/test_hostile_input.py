"""Hostile repository input and broken projects, on every surface (discovery, CLI, LSP, MCP).

One bad `pyproject.toml` costs only its own folder, is named, never hangs or crashes anything,
and a broken FineCode project never lets a run pass. The workspace is `hostile.build`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mcp_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finecode_er.config import (
    MAX_CONFIG_DEPTH,
    ConfigError,
    UnreadableConfig,
    load_project,
    read_pyproject,
)
from finecode_wm import workspace as workspace_module
from finecode_wm.service import FineCode
from finecode_wm.workspace import Workspace

from .conftest import counted_reads, probe_env
from .hostile import Hostile, LspPipe, McpPipe, add_project, build, strict_loads
from .rules import check_stream

pytestmark = pytest.mark.timeout(90)

DATED = {"day": "1979-05-27", "at": "07:32:00", "stamp": "1979-05-27T07:32:00+00:00",
         "local": "1979-05-27T07:32:00.500000", "days": ["2024-02-29"]}


@pytest.fixture
def hostile(tmp_path: Path) -> Hostile:
    return build(tmp_path / "ws")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finecode_wm", *args], cwd=cwd, env=probe_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


# -- discovery ---------------------------------------------------------------------------------


def test_each_bad_file_is_one_problem_of_its_folder(hostile: Hostile) -> None:
    started = time.monotonic()
    ws = Workspace([hostile.root])
    assert time.monotonic() - started < 10, "no read blocks or runs away"
    assert set(ws.projects) == hostile.runnable
    assert set(ws.problems) == set(hostile.broken)
    for root, fragment in hostile.broken.items():
        assert ws.problems[root].startswith(f"{root / 'pyproject.toml'}"), ws.problems[root]
        assert fragment in ws.problems[root], ws.problems[root]
    assert set(ws.skipped) == set(hostile.skipped)
    for root, fragment in hostile.skipped.items():
        assert ws.skipped[root].startswith(f"skipped {root / 'pyproject.toml'}: ")
        assert fragment in ws.skipped[root], ws.skipped[root]
    assert not any("loop" in str(root) for root in ws._found), "a symlink loop is not entered"
    assert ws.declares[hostile.root / "typo"] == frozenset({"lint"})
    assert ws.declares[hostile.root / "badbytes"] is None, "a file that did not parse: unknown"
    dated = ws.projects[hostile.root / "dated"]
    assert dated.actions["lint"].handlers[0].config == DATED


def test_unchanged_files_are_not_read_again(hostile: Hostile,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace([hostile.root])
    reads = counted_reads(monkeypatch, workspace_module)
    ws.set_folders([hostile.root])
    ws.apply(ws.scan())
    assert reads == [], "a walk or a refresh re-reads only what changed"
    alpha = hostile.healthy["alpha"] / "pyproject.toml"
    alpha.write_text(alpha.read_text() + "\n# edited, grown\n")
    ws.apply(ws.scan())
    assert reads == [alpha]
    (hostile.root / "typo" / "pyproject.toml").unlink()
    ws.apply(ws.scan())
    assert hostile.root / "typo" not in ws.problems, "a removed config is gone, not unreadable"


def test_handler_files_that_cannot_be_listed_are_a_problem(
        hostile: Hostile, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(root: Path, sources: Any) -> list[Path]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(workspace_module, "local_handler_files", denied)
    ws = Workspace([hostile.root])
    assert ws.projects == {}
    assert "cannot list the project's handler files" in ws.problems[hostile.healthy["alpha"]]


def test_config_values_json_cannot_carry(tmp_path: Path) -> None:
    def project(config: str) -> Path:
        (tmp_path / "pyproject.toml").write_text(
            f'[tool.finecode.actions.lint]\nhandlers = [{{ source = "m:f", config = {config} }}]\n')
        return tmp_path

    where = f"{tmp_path / 'pyproject.toml'} [tool.finecode].actions.lint.handlers[0].config"
    for value, message in (("{ when = nan }", f"{where}.when: nan is not allowed"),
                           ("{ a = [1, -inf] }", f"{where}.a[1]: -inf is not allowed"),
                           ('{ "odd key" = { x = inf } }', f'{where}."odd key".x: inf')):
        with pytest.raises(ConfigError) as raised:
            load_project(project(value))
        assert str(raised.value).startswith(message), raised.value
    nested = "{ a = " + "[" * MAX_CONFIG_DEPTH + "]" * MAX_CONFIG_DEPTH + " }"
    with pytest.raises(ConfigError, match=f"nest deeper than {MAX_CONFIG_DEPTH} levels"):
        load_project(project(nested))
    fits = "{ a = " + "[" * (MAX_CONFIG_DEPTH - 1) + "]" * (MAX_CONFIG_DEPTH - 1) + " }"
    loaded = load_project(project(fits))
    assert loaded is not None
    json.dumps(loaded.actions["lint"].to_json(), allow_nan=False)


@pytest.mark.parametrize("source", ["/:run", "../up:run", "a b:c", "m:", ":f", "m:f.", "m:f:g"])
def test_a_source_names_a_module_not_a_path(tmp_path: Path, source: str) -> None:
    """`/:run` would have made discovery walk `/` for the project's own handler files."""
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.finecode.actions.lint]\nhandlers = [{{ source = {json.dumps(source)} }}]\n')
    with pytest.raises(ConfigError, match="'source' must be \"module:attribute\""):
        load_project(tmp_path)
    assert workspace_module.local_handler_files(tmp_path, [source]) == []


@pytest.mark.parametrize(("content", "reason"), [
    (b"x" * (1024 * 1024 + 1), "larger than 1024 KiB"),
    ('"' + "\\\"" * 400_000, "not valid TOML"),  # unclosed, escapes: linear, not quadratic
    ("a = '''" + "'" * 2 + "x" * 500_000, "not valid TOML"),
    ("k." * 33 + "k = 1\n", "a key of more than 32 dotted parts"),
    ('[a."b.c".' + "d." * 31 + "e]\n", "a key of more than 32 dotted parts"),
])
def test_unparsable_input_is_refused_quickly(tmp_path: Path, content: str | bytes,
                                             reason: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    started = time.monotonic()
    with pytest.raises(UnreadableConfig, match=reason):
        read_pyproject(path)
    assert time.monotonic() - started < 3


def test_dots_in_strings_and_comments_are_not_keys(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('a = "' + "x." * 100 + '"  # ' + "y." * 100 + "\n"
                    "b = '''\n" + "z." * 100 + "\n''''\n"
                    'c = """' + 'w."' * 50 + '""""\n'
                    "[" + ".".join("k" * 32) + "]\n")
    data = read_pyproject(path)
    assert data["b"].endswith("'") and data["c"].endswith('w.""')


# -- property: discovery never raises, whatever the file holds --------------------------------

_KEY = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_SCALAR = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.integers(-(2**63), 2**63 - 1), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(), st.times(), st.datetimes(),
    st.datetimes(timezones=st.just(datetime.UTC)))


def _nest(depth: int, value: Any) -> Any:
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEY, inner, max_size=3))


_VALUE = st.recursive(_SCALAR, _containers, max_leaves=8)
_CONFIG = st.one_of(
    st.dictionaries(_KEY, _VALUE, max_size=4),
    st.builds(lambda depth, leaf: {"deep": _nest(depth, leaf)},
              st.integers(MAX_CONFIG_DEPTH - 3, MAX_CONFIG_DEPTH + 3), _SCALAR),
    _VALUE)  # wrong types where a table is expected
_SOURCE = st.sampled_from(["m:f", "pkg.mod:obj.run", "nocolon", "/:run", "..:x"])
_HANDLER = st.one_of(
    st.fixed_dictionaries({"source": _SOURCE},
                          optional={"config": _CONFIG, "extra": _SCALAR}),
    _VALUE)
_ACTION = st.one_of(
    st.fixed_dictionaries({"handlers": st.one_of(st.lists(_HANDLER, max_size=3), _VALUE)},
                          optional={"concurrent": st.one_of(st.booleans(), _SCALAR),
                                    "timeout": st.one_of(st.floats(), st.integers(), _SCALAR)}),
    _VALUE)
_TABLE = st.fixed_dictionaries({}, optional={
    "actions": st.one_of(st.dictionaries(_KEY, _ACTION, max_size=3), _VALUE),
    "python": st.one_of(st.just(".venv/bin/python"), _SCALAR),
    "isolated": st.one_of(st.booleans(), _SCALAR),
    "bogus": _SCALAR})


def _toml(value: Any) -> str:
    """A value as a TOML inline value (what tomli-w would write, kept small)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _has_non_finite(value: Any, depth: int = 1) -> bool:
    """A nan or infinity in a handler config, within the depth that is looked at."""
    if isinstance(value, dict | list) and depth <= MAX_CONFIG_DEPTH:
        items = value.values() if isinstance(value, dict) else value
        return any(_has_non_finite(v, depth + 1) for v in items)
    return isinstance(value, float) and not math.isfinite(value)


_FILE = st.one_of(
    _TABLE.map(lambda table: ("table", table)),
    st.binary(max_size=200).map(lambda raw: ("bytes", raw)),
    st.binary(max_size=100).map(lambda raw: ("bytes", b"[tool.finecode]\n" + raw)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FILE, min_size=1, max_size=4))
def test_discovery_never_raises_and_keeps_configs_json_safe(
        files: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, (kind, content) in enumerate(files):
            path = root / f"p{i}" / "pyproject.toml"
            path.parent.mkdir()
            if kind == "table":
                lines = [f"{json.dumps(k)} = {_toml(v)}" for k, v in content.items()]
                path.write_text("[tool.finecode]\n" + "\n".join(lines) + "\n", encoding="utf-8")
            else:
                path.write_bytes(content)
        ws = Workspace([root])
        for i, (kind, content) in enumerate(files):
            folder = root / f"p{i}"
            kinds = [folder in ws.projects, folder in ws.problems, folder in ws.skipped]
            assert sum(kinds) <= 1
            if kind == "table":
                assert sum(kinds[:2]) == 1, "a [tool.finecode] table: a project or a problem"
            message = ws.problems.get(folder) or ws.skipped.get(folder)
            if message is not None:
                assert str(folder / "pyproject.toml") in message
            project = ws.projects.get(folder)
            if project is not None:
                json.dumps([a.to_json() for a in project.actions.values()], allow_nan=False)
                configs = [h.config for a in project.actions.values() for h in a.handlers]
                assert not any(_has_non_finite(c) for c in configs)
            elif kind == "table" and isinstance(content.get("actions"), dict):
                for action in content["actions"].values():
                    handlers = action.get("handlers") if isinstance(action, dict) else None
                    for handler in handlers if isinstance(handlers, list) else []:
                        if isinstance(handler, dict) and _has_non_finite(handler.get("config")):
                            assert folder in ws.problems


# -- the terminal ------------------------------------------------------------------------------


def _expected_stderr(hostile: Hostile, stderr: str) -> None:
    for root in hostile.config_errors:
        fragment = {**hostile.broken, **hostile.unimportable}[root]
        lines = [line for line in stderr.splitlines() if line.startswith(f"config error: {root}:")]
        assert len(lines) == 1 and fragment in lines[0], (root, stderr)
    for folder, fragment in hostile.skipped.items():
        lines = [line for line in stderr.splitlines()
                 if line.startswith(f"warning: skipped {folder / 'pyproject.toml'}:")]
        assert len(lines) == 1 and fragment in lines[0], (folder, stderr)


def _expected_runtime(hostile: Hostile, by_project: dict[Path, Any], notes: str = "") -> None:
    """Run-time misbehaviour costs only the project that misbehaves, and is said."""
    assert hostile.nonfinite is not None and hostile.chatty is not None
    nonfinite = by_project[hostile.nonfinite]
    assert nonfinite["status"] == "ok" and None in nonfinite["result"]["y"], nonfinite
    assert by_project[hostile.chatty]["status"] == "ok"
    for root, fragment in hostile.huge.items():
        assert by_project[root]["status"] == "failed" and fragment in by_project[root]["error"]
    for root, note in hostile.outside.items():
        assert by_project[root]["status"] == "ok"
        if notes:
            assert note in notes, notes


def test_cli_json_names_every_broken_project_and_exits_2(hostile: Hostile) -> None:
    done = cli("run", "lint", "--json", "--timeout", "30", cwd=hostile.root)
    assert done.returncode == 2, done.stderr
    result = strict_loads(done.stdout)
    by_project = {Path(e["project"]): e for e in result["results"]}
    assert set(by_project) == hostile.runnable
    assert by_project[hostile.dated]["result"] == DATED, "TOML dates arrive as ISO strings"
    for root in hostile.unimportable:
        assert by_project[root]["status"] == "failed"
    assert {Path(e["project"]) for e in result["config_errors"]} == hostile.config_errors
    assert len(result["config_errors"]) == len(hostile.config_errors)
    assert result["summary"] == {**hostile.summary, "cached": 0, "findings": len(hostile.findings),
                                 "config_errors": len(hostile.config_errors)}
    _expected_runtime(hostile, by_project, done.stderr)
    _expected_stderr(hostile, done.stderr)


def test_cli_text_and_github_output(hostile: Hostile) -> None:
    text = cli("run", "lint", cwd=hostile.root)
    assert text.returncode == 2, text.stderr
    assert text.stdout.splitlines() == hostile.findings
    _expected_stderr(hostile, text.stderr)
    github = cli("run", "lint", "--output-format", "github", cwd=hostile.root)
    assert github.returncode == 2
    annotations = [line for line in github.stdout.splitlines()
                   if line.startswith("::error title=FineCode (config error),file=")]
    files = sorted(line.split("::")[1].split(",file=", 1)[1] for line in annotations)
    assert files == sorted(str(root / "pyproject.toml") for root in hostile.config_errors)
    assert not any("\n" in line or "%0A" in line for line in annotations)
    failures = [line for line in github.stdout.splitlines()
                if line.startswith("::error title=FineCode (") and " failed)::" in line]
    assert len(failures) == len(hostile.huge), "a failed child is annotated too"
    assert len(github.stdout.splitlines()) == len(annotations) + len(failures) + len(
        hostile.findings)


def test_cli_selection_decides_what_fails(hostile: Hostile) -> None:
    healthy = cli("run", "lint", "--json", "--project", "alpha", "--project", "dated",
                  cwd=hostile.root)
    assert healthy.returncode == 1, "findings, no config error"
    result = strict_loads(healthy.stdout)
    assert result["config_errors"] == [] and result["summary"]["ok"] == 2
    assert "config error:" not in healthy.stderr
    only_broken = cli("run", "lint", "--json", "--project", "typo", "--project", "nan",
                      cwd=hostile.root)
    assert only_broken.returncode == 2, "nothing runnable still reports and fails"
    result = strict_loads(only_broken.stdout)
    assert result["results"] == [] and [e["project"] for e in result["config_errors"]] == [
        str(hostile.root / "typo"), str(hostile.root / "nan")]
    assert only_broken.stderr.count("config error:") == 2
    unknown = cli("run", "nope", "--project", "typo", cwd=hostile.root)
    assert unknown.returncode == 2 and "unknown action 'nope'" in unknown.stderr
    skipped = cli("run", "lint", "--project", "vendored", cwd=hostile.root)
    assert skipped.returncode == 2 and "is not a FineCode project: its pyproject.toml was " \
        "skipped" in skipped.stderr


def test_cli_list_exits_1_on_broken_configs(hostile: Hostile) -> None:
    done = cli("list", "--json", cwd=hostile.root)
    assert done.returncode == 1
    assert {p["path"] for p in strict_loads(done.stdout)} == {str(p) for p in hostile.runnable}
    assert done.stderr.count("config error:") == len(hostile.broken)
    assert done.stderr.count("warning: skipped") == len(hostile.skipped)


def test_information_and_hint_findings_do_not_fail_a_run(tmp_path: Path) -> None:
    def run(severities: list[str]) -> int:
        items = ", ".join(f'{{ path = "a.py", line = {i + 1}, column = 1, message = "m",'
                          f' severity = "{s}" }}' for i, s in enumerate(severities))
        (tmp_path / "pyproject.toml").write_text(
            '[tool.finecode.actions.lint]\nhandlers = [{ source = "probe_handlers:echo",'
            f" config = {{ diagnostics = [{items}] }} }}]\n")
        return cli("run", "lint", cwd=tmp_path).returncode

    assert run(["information", "hint"]) == 0
    assert run(["information", "warning"]) == 1
    assert run(["error"]) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["run", "x", "--timeout", "0"], "must be a positive number of seconds, got '0'"),
    (["run", "x", "--timeout", "-1"], "must be a positive number of seconds"),
    (["run", "x", "--timeout", "nan"], "must be a positive number of seconds"),
    (["run", "x", "--timeout", "inf"], "must be a positive number of seconds"),
    (["run", "x", "--timeout", "soon"], "must be a positive number of seconds"),
    (["run", "x", "--max-parallel", "0"], "must be a whole number of at least 1, got '0'"),
    (["run", "x", "--max-parallel", "-2"], "at least 1"),
    (["lsp", "--max-parallel", "0"], "at least 1"),
    (["mcp", "--max-parallel", "1.5"], "at least 1"),
])
def test_bad_numbers_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr


# -- the editor --------------------------------------------------------------------------------


async def _until(check: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _without_seconds(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "results": [{k: v for k, v in e.items() if k != "seconds"}
                                  for e in result["results"]]}


async def test_lsp_serves_a_hostile_workspace(hostile: Hostile) -> None:
    lsp = LspPipe()
    try:
        await lsp.start(hostile.root, warmRunners=False)
        shown = lambda kind: [p["message"] for p in lsp.notifications("window/showMessage")  # noqa: E731
                              if p["type"] == kind]
        await _until(lambda: len(shown(1)) >= len(hostile.broken)
                     and len(shown(2)) >= len(hostile.skipped))
        for root, fragment in hostile.broken.items():
            (message,) = [m for m in shown(1) if m.startswith(f"FineCode: {root}/pyproject")]
            assert fragment in message
        for folder in hostile.skipped:
            assert len([m for m in shown(2) if f"skipped {folder}/pyproject" in m]) == 1
        listed = await lsp.call("workspace/executeCommand", {"command": "finecode.listProjects"})
        assert {p["path"] for p in listed["result"]} == {str(p) for p in hostile.runnable}

        first = await lsp.call("runBatch", {"actions": ["lint"], "workDoneToken": "h1"})
        result = first["result"]
        assert {Path(e["project"]) for e in result["config_errors"]} == hostile.config_errors
        assert result["summary"] == hostile.summary
        by_project = {Path(e["project"]): e for e in result["results"]}
        _expected_runtime(hostile, by_project)
        assert by_project[hostile.dated]["result"] == DATED
        check_stream([p["value"] for p in lsp.notifications("$/progress")
                      if p["token"] == "h1"])
        published = {p["uri"]: p["diagnostics"]
                     for p in lsp.notifications("textDocument/publishDiagnostics")}
        alpha, beta = hostile.healthy["alpha"], hostile.healthy["beta"]
        far = next(iter(hostile.outside))
        assert set(published) == {(alpha / "pkg/x.py").as_uri(), (alpha / "pkg/y.py").as_uri(),
                                  (beta / "src/m.py").as_uri(), (far / "inside.py").as_uri(),
                                  (far / "abs.py").as_uri()}
        [far_down] = published[(far / "inside.py").as_uri()]
        assert far_down["range"]["start"] == {"line": 2**31 - 2, "character": 2**31 - 2}
        assert [(d["range"]["start"], d.get("code"), d["message"])
                for uri in sorted(published) if "alpha" in uri for d in published[uri]] == [
            ({"line": 2, "character": 0}, "F401", "`os` imported but unused"),
            ({"line": 6, "character": 4}, None, "shadowed name")]
        assert [(d["range"]["start"], d.get("code"), d["message"], d["severity"])
                for d in published[(beta / "src/m.py").as_uri()]] == [
            ({"line": 0, "character": 7}, "F401", "`sys` imported but unused", 2),
            ({"line": 1, "character": 0}, "N1", "a note", 3)]
        await _until(lambda: any("no_such_module_fc" in m for m in shown(1)))
        count = len(lsp.notifications("window/showMessage"))

        again = await lsp.call("runBatch", {"actions": ["lint"], "workDoneToken": "h2"})
        assert _without_seconds(again["result"]) == _without_seconds(result), "a warm server"
        await asyncio.sleep(0.2)
        assert len(lsp.notifications("window/showMessage")) == count, "each problem once"
        healthy = await lsp.call("runBatch", {"actions": ["lint"], "projects": [str(alpha)]})
        assert healthy["result"]["summary"]["ok"] == 1 and "config_errors" not in \
            healthy["result"]
        broken = await lsp.call("runBatch", {"actions": ["lint"], "workDoneToken": "h3",
                                             "projects": [str(hostile.root / "typo")]})
        assert broken["result"]["results"] == [] and broken["result"]["config_errors"][0][
            "project"] == str(hostile.root / "typo")
        stream = [p["value"] for p in lsp.notifications("$/progress") if p["token"] == "h3"]
        check_stream(stream)
        assert stream[-1]["message"] == "nothing to run: 1 broken config(s)"
        assert lsp.broken is None and lsp.alive
    finally:
        await lsp.stop()
    assert lsp.broken is None, f"the server wrote invalid JSON: {lsp.broken}"
    assert lsp.proc is not None and lsp.proc.returncode == 0


# -- the agent ---------------------------------------------------------------------------------


async def test_mcp_starts_on_a_hostile_workspace_and_rediscovers(hostile: Hostile) -> None:
    mcp = McpPipe()
    try:
        await mcp.start(hostile.root, mcp_types.LATEST_PROTOCOL_VERSION)
        listed = (await mcp.tool("list_projects", {}))["structuredContent"]
        assert {p["path"] for p in listed["projects"]} == {str(p) for p in hostile.runnable}
        assert len(listed["problems"]) == len(hostile.broken)
        for root in hostile.broken:
            assert sum(p.startswith(f"{root}: {root}/pyproject.toml") for p in listed["problems"])\
                == 1
        assert sorted(listed["skipped"]) == sorted(
            s for s in listed["skipped"] if any(str(f) in s for f in hostile.skipped))
        assert len(listed["skipped"]) == len(hostile.skipped)

        run = await mcp.tool("run_actions", {"actions": ["lint"]})
        structured = run["structuredContent"]
        assert {Path(e["project"]) for e in structured["config_errors"]} == hostile.config_errors
        assert structured["summary"] == hostile.summary
        by_project = {Path(e["project"]): e for e in structured["results"]}
        _expected_runtime(hostile, by_project, run["content"][0]["text"])
        assert by_project[hostile.dated]["result"] == DATED
        text = run["content"][0]["text"].splitlines()
        assert all(line.startswith("config error: ")
                   for line in text[:len(hostile.config_errors)]), "config errors come first"
        assert {line.removeprefix("config error: ").split(":")[0]
                for line in text[:len(hostile.config_errors)]} == {
            r.name for r in hostile.config_errors}
        assert text[-len(hostile.findings):] == hostile.findings

        gamma = add_project(hostile.root, "gamma")
        listed = (await mcp.tool("list_projects", {}))["structuredContent"]
        assert str(gamma) in {p["path"] for p in listed["projects"]}, "a project added later"
        added = await mcp.tool("run_actions", {"actions": ["lint"], "projects": ["gamma"]})
        assert added["structuredContent"]["summary"]["ok"] == 1
        assert "config_errors" not in added["structuredContent"]
        assert added["content"][0]["text"].splitlines()[-1] == "gamma/new.py:4:2: E1 added"
        (hostile.root / "typo" / "pyproject.toml").write_text(
            (hostile.root / "typo" / "pyproject.toml").read_text().replace("handler =",
                                                                            "handlers ="))
        fixed = await mcp.tool("run_actions", {"actions": ["lint"], "projects": ["typo"]})
        assert fixed["structuredContent"]["summary"]["failed"] == 1, "fixed, so it runs (x:y)"
        assert mcp.alive and mcp.broken is None
    finally:
        await mcp.close()
    assert mcp.broken is None, f"the server wrote invalid JSON: {mcp.broken}"


async def test_discovery_runs_off_the_event_loop(hostile: Hostile,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan that waits for the loop to do something: it only finishes on another thread."""
    released = threading.Event()
    real = Workspace.scan

    def waiting(self: Workspace, folders: list[Path] | None = None) -> Any:
        assert released.wait(10), "the scan blocked the event loop"
        return real(self, folders)

    async def release() -> None:
        await asyncio.sleep(0)
        released.set()

    monkeypatch.setattr(Workspace, "scan", waiting)
    fine = FineCode(lambda _message: None)
    setter = asyncio.create_task(release())
    await fine.discover([hostile.root])
    await setter
    assert set(fine.workspace.projects) == hostile.runnable
    released.clear()
    setter = asyncio.create_task(release())
    await fine.prepare()
    await setter
