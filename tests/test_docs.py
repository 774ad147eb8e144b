"""Every snippet in README.md and docs/*.md holds: commands run as shown, TOML is a config
FineCode discovers, Python compiles and its handlers run.

The blocks are read from the files as they are now (whoever edits them), by their fence:
- `bash`, `sh`, `console`: each line is a command (comments stripped, `cd` followed). Commands
  run in a temporary copy of the example workspace laid out as in the repository
  (`examples/workspace`), with a home of their own (`~/src/repo` is a copy too); a command
  runs as shown when it exits 0 or 1 (findings) without a usage error or traceback. A section
  whose Python block starts with `# name.py` is a project of its own: its TOML and files are
  written there, and its commands run in it and must exit 0.
- `toml`: parses; one with a `[tool.finecode…]` table is a project that discovery accepts.
- `python`: compiles (a fragment compiles as the body of an async handler); a block that defines
  handlers `(params, ctx)` runs each of them as an action through `finecode-wm run`.
- `json`: parses.
`SKIPPED` lists what cannot run here, each with its reason.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from finecode_er.config import _ACTION_KEYS, _PROJECT_KEYS
from finecode_wm.workspace import examine

from .conftest import EXAMPLE_LEFTOVERS, EXAMPLES, probe_env, socket_folder

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND_LANGS = {"bash", "sh", "console"}
# Command prefixes that do not run in this test, and why (the rest of their block still runs).
SKIPPED = {
    "bash examples/demo.sh": "makes each example project's .venv with uv (minutes); its actions "
                             "run below as `finecode-wm run …`",
    "bash tests/run.sh": "the test suite itself",
    "bash tests/vscode/setup.sh": "downloads code-server and Chromium (tests/test_vscode.py)",
    "cd examples/vscode": "needs Node and npm (tests/test_vscode.py builds the extension)",
    "python -m venv": "installation: the suite runs in the environment it makes",
    "pip install": "installation: the suite runs in the environment it makes",
    "claude mcp add": "needs the Claude Code CLI",
    "finecode-wm run prepare_env": "makes venvs with uv from PyPI (tests/test_prepare_env.py)",
    "finecode-wm run lint --changed-since": "needs a git work tree with that ref "
                                            "(tests/test_selection_cli.py runs it in one)",
}
# Placeholders in commands, and what they stand for here.
PLACEHOLDERS = {"DIR": "examples/workspace"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
HEADING = re.compile(r"^#+ ")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    lang: str
    text: str
    section: str

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def blocks() -> list[Block]:
    """Every fenced block of the docs, dedented by its fence's indent."""
    found = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        section, i = "", 0
        while i < len(lines):
            if HEADING.match(lines[i]):
                section = lines[i]
            fence = FENCE.match(lines[i])
            if fence is None:
                i += 1
                continue
            indent, body, start = len(fence["indent"]), [], i + 1
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][indent:])
                i += 1
            found.append(Block(doc, start, fence["lang"], "\n".join(body) + "\n", section))
            i += 1
    return found


BLOCKS = blocks()


def of(*langs: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang in langs]


def ids(found: list[Block]) -> list[str]:
    return [b.name for b in found]


# -- a section's own project (a handler file and its config) ----------------------------------

FILE_HEADER = re.compile(r"^# (?P<name>[\w/]+\.py)\n")


def section_files(block: Block) -> dict[str, str]:
    """The files a section shows (`# name.py` Python blocks) and its pyproject.toml."""
    same = [b for b in BLOCKS if b.doc == block.doc and b.section == block.section]
    files = {m["name"]: b.text for b in same if b.lang == "python"
             if (m := FILE_HEADER.match(b.text))}
    if files:
        files["pyproject.toml"] = "".join(b.text for b in same if b.lang == "toml")
    return files


# -- commands -----------------------------------------------------------------------------


def commands(block: Block) -> list[str]:
    found = []
    for raw in block.text.splitlines():
        line = re.sub(r"\s+#\s.*$", "", raw).strip()
        if line and not line.startswith("#"):
            found.append(line)
    return found


def skipped(command: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def _layout(tmp: Path) -> tuple[Path, Path]:
    """(repository-like root with examples/workspace, a home with ~/src/repo)."""
    root, home = tmp / "repo", tmp / "home"
    shutil.copytree(EXAMPLES, root / "examples" / "workspace", ignore=EXAMPLE_LEFTOVERS)
    shutil.copytree(EXAMPLES, home / "src" / "repo", ignore=EXAMPLE_LEFTOVERS)
    return root, home


def _env(home: Path, runtime: str) -> dict[str, str]:
    """A home of the block's own, and its own folder for a daemon's socket (short: a socket's
    path is limited), so a daemon a block starts answers only that block."""
    return probe_env() | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                          "XDG_CACHE_HOME": str(home / ".cache"), "XDG_RUNTIME_DIR": runtime,
                          "PATH": f"{Path(sys.executable).parent}:{probe_env()['PATH']}"}


def _run_command(command: str, cwd: Path, env: dict[str, str]
                 ) -> subprocess.CompletedProcess[str]:
    words = [PLACEHOLDERS.get(w, w) for w in shlex.split(command)]
    script = " ".join(shlex.quote(w) if not w.startswith("~") else w for w in words)
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=100)


@pytest.mark.parametrize("block", of(*COMMAND_LANGS), ids=ids(of(*COMMAND_LANGS)))
def test_commands_run_as_shown(block: Block, tmp_path: Path) -> None:
    root, home = _layout(tmp_path)
    own = section_files(block)
    cwd = root
    if own:  # the section's project: its files, in a workspace of its own
        cwd = tmp_path / "own"
        for name, text in own.items():
            (cwd / "project" / name).parent.mkdir(parents=True, exist_ok=True)
            (cwd / "project" / name).write_text(text)
    ran = 0
    runtime = socket_folder("fc-doc-")
    env = _env(home, runtime)
    try:
        for command in commands(block):
            if skipped(command):
                continue
            for part in command.split(" && "):
                if part.startswith("cd "):
                    cwd = (cwd / part[3:].strip()).resolve()
                    assert cwd.is_dir(), (block.name, part)
                    continue
                done = _run_command(part, cwd, env)
                ran += 1
                shown = f"{block.name}: {part}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
                assert done.returncode in ((0,) if own else (0, 1)), shown
                for bad in ("usage:", "error:", "Traceback", "config error:", "note:"):
                    assert bad not in done.stderr, shown
    finally:
        if os.path.isdir(os.path.join(runtime, "finecode-wm")):  # a daemon the block left
            _run_command("finecode-wm daemon stop", root, env)
        shutil.rmtree(runtime, ignore_errors=True)
    if not ran:
        assert all(skipped(c) for c in commands(block)), block.name


# -- TOML, Python, JSON -------------------------------------------------------------------


@pytest.mark.parametrize("block", of("toml"), ids=ids(of("toml")))
def test_toml_is_a_config_discovery_accepts(block: Block, tmp_path: Path) -> None:
    data = tomllib.loads(block.text)
    if "finecode" not in data.get("tool", {}):
        return
    (tmp_path / "pyproject.toml").write_text(block.text)
    found = examine(tmp_path)
    assert found is not None and found.problem is None and found.project is not None, \
        (block.name, found)


def _compiles(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError:  # a fragment: the body of a handler
        return ast.parse("async def _fragment(params, ctx):\n" + textwrap.indent(text, "    "))


def handlers(tree: ast.Module) -> list[str]:
    """Top-level `async def f(params, ctx)` and classes with `async def run(self, params, ctx)`."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and len(node.args.args) == 2:
            names.append(node.name)
        if isinstance(node, ast.ClassDef) and any(
                isinstance(n, ast.AsyncFunctionDef) and n.name == "run" for n in node.body):
            names.append(node.name)
    return names


NOOP = "async def noop(params, ctx):\n    return {}\n"


@pytest.mark.parametrize("block", of("python"), ids=ids(of("python")))
def test_python_compiles_and_its_handlers_run(block: Block, tmp_path: Path) -> None:
    tree = _compiles(block.text)
    names = handlers(tree)
    if not names:
        return
    # Each handler is an action of `ws/proj`; what it delegates to (lint, format, here and in
    # ../lib) is a no-op unless the block defines it.
    prefix = "" if "import RunActionContext" in block.text else \
        "from finecode_er.api import RunActionContext\n"
    proj, lib = tmp_path / "ws" / "proj", tmp_path / "ws" / "lib"
    proj.mkdir(parents=True)
    lib.mkdir()
    (proj / "snippet.py").write_text(prefix + block.text + "\n\n" + NOOP)
    (lib / "snippet.py").write_text(NOOP)
    actions = {name: f"snippet:{name}" for name in names}
    delegated = {a: "snippet:noop" for a in ("lint", "format") if a not in actions}
    (proj / "pyproject.toml").write_text("".join(
        f'[tool.finecode.actions.{a}]\nhandlers = [{{ source = "{s}" }}]\n'
        for a, s in {**actions, **delegated}.items()))
    (lib / "pyproject.toml").write_text("".join(
        f'[tool.finecode.actions.{a}]\nhandlers = [{{ source = "snippet:noop" }}]\n'
        for a in ("lint", "format")))
    done = subprocess.run([sys.executable, "-m", "finecode_wm", "run", *names, "--json",
                           "--project", "proj"], cwd=tmp_path / "ws", env=probe_env(),
                          capture_output=True, text=True, timeout=100)
    results = json.loads(done.stdout)["results"]
    assert {r["action"]: r["status"] for r in results} == dict.fromkeys(names, "ok"), \
        (block.name, results, done.stderr)


@pytest.mark.parametrize("block", of("json"), ids=ids(of("json")))
def test_json_parses(block: Block) -> None:
    json.loads(block.text)


# -- statements the docs make about the code ------------------------------------------------


def test_the_blocks_are_found() -> None:
    """The extractor reads what is there: a change that loses blocks fails here."""
    langs = {b.lang for b in BLOCKS}
    assert {"bash", "toml", "python", "json"} <= langs
    assert len(of(*COMMAND_LANGS)) >= 8 and len(of("python")) >= 6


def test_allowed_keys_in_messages_are_the_codes() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    project = ", ".join(sorted(_PROJECT_KEYS))
    action = ", ".join(sorted(_ACTION_KEYS))
    assert f"[tool.finecode]: unknown key(s) bogus (allowed: {project})" in text
    assert f".actions.lint: unknown key(s) x (allowed: {action})" in text
    for doc in DOCS:
        for listed in re.findall(r"actions\.lint: unknown key\(s\) \w+ \(allowed: ([\w, ]+)\)",
                                 doc.read_text()):
            assert listed == action, doc


def test_runner_cap_default_is_the_codes_everywhere() -> None:
    from finecode_wm.runners.pool import RunnerPool

    pool = RunnerPool(lambda _m: None, per_environment=1)
    assert pool.max_runners == 4, "docs say max(4, maxParallel)"
    for doc in [*DOCS, REPO / "examples" / "nvim" / "README.md"]:
        for found in re.findall(r"max\((\d+), maxParallel\)", doc.read_text()):
            assert found == "4", doc


def test_getting_started_output_samples_hold(tmp_path: Path) -> None:
    """The sample listing, GitHub line and failing-test line are what a run prints."""
    text = (REPO / "docs" / "getting-started.md").read_text()
    root, home = _layout(tmp_path)
    workspace = root / "examples" / "workspace"
    env = _env(home, os.environ["XDG_RUNTIME_DIR"])
    listing = _run_command("finecode-wm run lint", workspace, env).stdout.splitlines()
    github = _run_command("finecode-wm run lint --output-format github", workspace, env)
    tests = _run_command("finecode-wm run test", workspace, env).stdout.splitlines()
    samples = [b.text.strip() for b in BLOCKS
               if b.doc.name == "getting-started.md" and b.lang == ""]
    assert "small/tinytools/batch_text.py:36:33: F821 Undefined name `STATUS_LABELS`" in samples[0]
    for line in samples[0].splitlines():
        assert line in listing, line
    finding = next(s for s in samples if s.startswith("medium/tests/"))
    assert finding in tests
    annotation = next(s for s in samples if s.startswith("::warning"))
    assert annotation.replace("/repo/examples/workspace", str(workspace)) in \
        github.stdout.splitlines()
    assert "Found 10 finding(s) in 10 file(s)." in text
