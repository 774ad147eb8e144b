"""Ruff-backed ``lint`` and ``format`` handlers.

Ruff runs as a subprocess on batches of files rather than once on the whole project: one
process per batch gives the handler a natural point to advance progress. Starting ruff costs
more than checking a few dozen files, so a batch holds at least `MIN_BATCH` files, and a large
project is split into about `MAX_BATCHES` of them (`batch_size` in the config fixes the size).
Cancelling kills the ruff process of the current batch.

Both opt in to the WM's result cache: a result depends on the project's files (the WM keys
those), on ruff's release (the declared ``version``) and on what ruff reads outside the
project: its executable and the configuration files it looks for in parent directories and
in the user's config directory, and the shared configs any of those (or the
project's own) ``extend`` (the declared ``inputs``).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from finecode_er.api import cacheable
from finecode_examples._files import SKIPPED_DIRS, python_files, relpath
from finecode_examples._subprocess import run, tail

if TYPE_CHECKING:
    from finecode_er.api import RunActionContext

MIN_BATCH = 32  # files per ruff process at least (a ruff start costs more than ~30 files)
MAX_BATCHES = 10  # steps a large project's progress advances in
LINT_CONFIG_KEYS = frozenset({"select", "batch_size", "severity"})
FORMAT_CONFIG_KEYS = frozenset({"batch_size"})
INVALID_SYNTAX = "invalid-syntax"
# Where ruff looks for configuration: the closest of these in a file's directory or its
# parents, then the user's config directory.
RUFF_CONFIG_NAMES = (".ruff.toml", "ruff.toml", "pyproject.toml")

# Ruff reports files it cannot parse on stderr and exits with 2; that is a finding
# about the project, not a crash of the tool, so it must not fail the action.
_PARSE_FAILURE = re.compile(r"^error: Failed to parse (?P<file>.+?):\d+:\d+:", re.MULTILINE)


async def _ruff_version() -> str:
    """`ruff --version` of the ruff these handlers run (evaluated once per runner)."""
    returncode, stdout, stderr = await run([*_ruff_command(), "--version"], cwd=Path.cwd())
    if returncode != 0:
        raise RuntimeError(f"ruff --version failed: {tail(stderr or stdout)}")
    return stdout.strip()


def _ruff_inputs(root: Path) -> list[str]:
    """What ruff reads besides the project's files: its executable, and every place it looks
    for configuration outside the project (a file that appears there changes the findings)."""
    command = _ruff_command()
    found = [command[0]] if len(command) == 1 else [
        spec.origin for spec in [importlib.util.find_spec("ruff")] if spec and spec.origin]
    parents = [str(parent / name) for parent in root.parents for name in RUFF_CONFIG_NAMES]
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = [str(Path(config_home) / "ruff" / name) for name in RUFF_CONFIG_NAMES]
    return found + parents + user + _extended([*_project_configs(root), *parents, *user])


def _project_configs(root: Path) -> list[str]:
    """The ruff configuration files in the project (its own files are keyed already; what
    they `extend` may lie outside it)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames
                       if name not in SKIPPED_DIRS and not name.startswith(".")]
        found += [os.path.join(dirpath, name) for name in RUFF_CONFIG_NAMES if name in filenames]
    return found


def _extended(configs: Sequence[str]) -> list[str]:
    """The files these configurations `extend`, transitively: ruff reads them too, so an edit
    to a shared base config changes the findings."""
    found: list[str] = []
    todo = list(configs)
    seen = set(todo)
    while todo:
        path = todo.pop()
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except (OSError, ValueError):  # absent, not a file, not TOML: nothing it extends
            continue
        table = data.get("tool", {}).get("ruff", {}) if path.endswith("pyproject.toml") else data
        target = table.get("extend") if isinstance(table, dict) else None
        if not isinstance(target, str):
            continue
        extended = os.path.normpath(os.path.join(os.path.dirname(path),
                                                 os.path.expanduser(target)))
        if extended not in seen:
            seen.add(extended)
            found.append(extended)
            todo.append(extended)
    return found


@cacheable(version=_ruff_version, inputs=_ruff_inputs)
async def lint(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Run ``ruff check`` on the project's Python files and collect its diagnostics."""
    config = ctx.config or {}
    _reject_unknown_keys(config, LINT_CONFIG_KEYS)
    root = ctx.project_root
    files = python_files(root, params)
    # --force-exclude: explicit paths still obey the project's `exclude`/`extend-exclude`,
    # so the findings are the ones `ruff check` in the project directory reports.
    command = [*_ruff_command(), "check", "--output-format", "json", "--no-cache",
               "--force-exclude"]
    command += _select_args(config.get("select"))
    severity = _severity(config.get("severity", "warning"))
    diagnostics: list[dict[str, Any]] = []
    async with ctx.progress("Linting", total=len(files), cancellable=True) as progress:
        for batch in _batches(files, _batch_size(config, len(files))):
            returncode, stdout, stderr = await _run(command, batch, root)
            if returncode not in (0, 1):
                raise RuntimeError(_crash_message("check", returncode, stderr))
            diagnostics.extend(_parse_check_output(stdout, stderr, root, severity))
            await progress.advance(len(batch), message=batch[-1].name)
    return {"files": len(files), "diagnostics": diagnostics, "count": len(diagnostics)}


@cacheable(version=_ruff_version, inputs=_ruff_inputs)
async def format(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Report which files ``ruff format`` would change, without touching them.

    ``--diff`` is parsed instead of ``--check`` because its ``--- path`` headers have
    kept the same shape across ruff releases, while the ``--check`` wording has not.
    """
    config = ctx.config or {}
    _reject_unknown_keys(config, FORMAT_CONFIG_KEYS)
    root = ctx.project_root
    files = python_files(root, params)
    command = [*_ruff_command(), "format", "--diff", "--no-cache", "--force-exclude"]
    would_change: list[str] = []
    unparsable: list[str] = []
    async with ctx.progress("Checking formatting", total=len(files), cancellable=True) as progress:
        for batch in _batches(files, _batch_size(config, len(files))):
            returncode, stdout, stderr = await _run(command, batch, root)
            names = {relpath(path, root) for path in batch}
            failed = [_posix(match["file"]) for match in _PARSE_FAILURE.finditer(stderr)]
            if returncode not in (0, 1) and not failed:
                raise RuntimeError(_crash_message("format", returncode, stderr))
            would_change.extend(_diff_targets(stdout, names))
            unparsable.extend(failed)
            await progress.advance(len(batch), message=batch[-1].name)
    # One finding per file to reformat, so a format check fails CI and shows in the editor.
    diagnostics = [{"path": name, "line": 1, "column": 1, "code": "format",
                    "message": "would be reformatted by `ruff format`", "severity": "warning"}
                   for name in would_change]
    return {"files": len(files), "would_change": would_change, "unparsable": unparsable,
            "diagnostics": diagnostics}


def _ruff_command() -> list[str]:
    """Locate ruff, preferring the one installed next to the running interpreter.

    The ER runs on the project's interpreter, so the ruff beside it is the version the
    project pinned; one on ``PATH`` may be a different release with different rules.
    """
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found:
        return [found]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    raise RuntimeError(
        f"ruff is not installed for {sys.executable}; install it with 'pip install ruff'"
    )


async def _run(command: Sequence[str], batch: Sequence[Path], root: Path) -> tuple[int, str, str]:
    """Run ruff on one batch from the project root; killed if the action is cancelled
    (`_subprocess.run`), so a cancelled action never leaves ruff running."""
    return await run([*command, "--", *(relpath(path, root) for path in batch)], cwd=root)


def _parse_check_output(stdout: str, stderr: str, root: Path,
                        severity: str = "warning") -> list[dict[str, Any]]:
    """Turn ruff's JSON report into FineCode's diagnostics shape (project-relative paths)."""
    try:
        entries = json.loads(stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(
            f"ruff check printed no JSON report: {tail(stderr or stdout)}"
        ) from error
    return [_diagnostic(entry, root, severity) for entry in entries]


def _severity(value: object) -> str:
    """``config.severity``: what a rule violation is, ``warning`` (as ruff's language server
    shows it) or ``error`` (as ``ruff check`` reports it in CI)."""
    if value not in ("warning", "error"):
        raise ValueError(f"config 'severity' must be \"warning\" or \"error\", got {value!r}")
    return str(value)


def _diagnostic(entry: Mapping[str, Any], root: Path, severity: str = "warning") -> dict[str, Any]:
    """One ruff finding; a syntax error is an error, a rule violation `severity` (by default a
    warning, like ruff's own language server shows it)."""
    code = entry.get("code") or INVALID_SYNTAX
    finding: dict[str, Any] = {
        "path": relpath(Path(entry["filename"]), root),
        "line": entry["location"]["row"],
        "column": entry["location"]["column"],
        "code": code,
        "message": entry["message"],
        "severity": "error" if code == INVALID_SYNTAX else severity,
        "source": "ruff",
    }
    end = entry.get("end_location")
    if end:
        finding["end_line"], finding["end_column"] = end["row"], end["column"]
    if entry.get("url"):
        finding["url"] = entry["url"]
    return finding


def _diff_targets(diff: str, names: set[str]) -> list[str]:
    """Return the files named by ``--- x`` / ``+++ x`` header pairs in a unified diff.

    Matching against the batch's own names keeps a removed line that happens to
    start with ``-- `` from being mistaken for a header.
    """
    targets: list[str] = []
    for header, following in itertools.pairwise(diff.splitlines()):
        if not (header.startswith("--- ") and following.startswith("+++ ")):
            continue
        name = _posix(header[4:].strip())
        if name in names and name not in targets:
            targets.append(name)
    return targets


def _select_args(select: object) -> list[str]:
    """Translate ``config.select`` (a list of rule codes, or one comma-separated string)."""
    if select is None:
        return []
    if isinstance(select, str):
        return ["--select", select]
    if isinstance(select, list) and select and all(isinstance(code, str) for code in select):
        return ["--select", ",".join(select)]
    raise ValueError(f"config 'select' must be a non-empty list of rule codes, got {select!r}")


def _batch_size(config: Mapping[str, Any], files: int) -> int:
    """Files per ruff process: ``config.batch_size``, else at least `MIN_BATCH` and about
    `MAX_BATCHES` batches."""
    size = config.get("batch_size")
    if size is None:
        return max(MIN_BATCH, -(-files // MAX_BATCHES))
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"config 'batch_size' must be a positive integer, got {size!r}")
    return size


def _reject_unknown_keys(config: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Fail loudly on a misspelt option instead of silently running with defaults."""
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(allowed)}")


def _batches(files: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    """Split ``files`` into consecutive chunks of at most ``size``."""
    for start in range(0, len(files), size):
        yield files[start : start + size]


def _crash_message(subcommand: str, returncode: int, stderr: str) -> str:
    """Describe an unexpected ruff failure with the end of its stderr."""
    return f"ruff {subcommand} failed with exit code {returncode}: {tail(stderr)}"


def _posix(name: str) -> str:
    """Normalise a path printed by ruff (backslashes on Windows) to the result form."""
    return PurePath(name).as_posix()
