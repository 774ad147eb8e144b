"""Findings in run results: the fixed diagnostics shape, and the latest findings per file.

Front-end neutral: the terminal and the MCP summary read one run's findings from a
`RunFindings` (worked out once per run: the listing, each entry's count, the notes on dropped
findings), the LSP server keeps a `FindingStore` of `findings_of` each entry and turns its
per-file lists into pushed or pulled reports. A file's findings are
the union of the latest result of every (project, action) that reported on it, so a `format` run
never hides what `lint` found, and a re-run that finds nothing clears that action's part.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .results import Entry
from .workspace import SKIPPED_DIRS, Project

__all__ = ["MAX_POSITION", "SEVERITIES", "FileFindings", "Finding", "FindingStore", "RunFindings",
           "findings_of", "inputs_of", "normalize", "outside_note", "text_lines"]

Finding = dict[str, Any]
SEVERITIES = ("error", "warning", "information", "hint")
MAX_POSITION = 2**31 - 1  # LSP's largest position number: larger lines and columns are clamped
_OPTIONAL_INTS = ("end_line", "end_column")
_OPTIONAL_STRS = ("code", "url", "source")


def _position(value: Any) -> int | None:
    """A 1-based line or column, clamped to `MAX_POSITION`; None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return min(value, MAX_POSITION)
    return None


def _shaped(raw: Any) -> Finding | None:
    """One finding in the fixed shape, or None when it is not usable (a handler's bug)."""
    if not isinstance(raw, dict):
        return None
    path, message = raw.get("path"), raw.get("message")
    line, column = _position(raw.get("line")), _position(raw.get("column"))
    if not (isinstance(path, str) and path and isinstance(message, str)
            and line is not None and column is not None):
        return None
    finding: Finding = {"path": path, "line": line, "column": column, "message": message}
    for key in _OPTIONAL_INTS:
        value = _position(raw.get(key))
        if value is not None:
            finding[key] = value
    for key in _OPTIONAL_STRS:
        if isinstance(raw.get(key), str) and raw[key]:
            finding[key] = raw[key]
    if raw.get("severity") in SEVERITIES:
        finding["severity"] = raw["severity"]
    return finding


@functools.lru_cache(maxsize=1 << 16)
def _path(text: str) -> Path:
    """`Path(text)`, the same object for the same text while it is remembered: a long-lived
    server lists the same files run after run, and building a `Path` (and its hash, for the
    finding store) costs more than the rest of locating a finding."""
    return Path(text)


class _Project:
    """Where a project's findings may point: files under its root, through symlinks too."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root: Path | None = None
        self._seen: dict[str, Path | None] = {}
        self._links: dict[str, bool] = {}  # path under the root -> is it a symlink

    def locate(self, path: str) -> Path | None:
        """The file `path` names (relative to the root, or absolute), or None when it lies
        outside the project: an absolute path elsewhere, a `..` escape, a symlink out."""
        if path not in self._seen:
            self._seen[path] = self._locate(path)
        return self._seen[path]

    def _locate(self, path: str) -> Path | None:
        if "\0" in path:  # no file has that name
            return None
        root = str(self.root)
        joined = os.path.join(root, path)
        shown = os.path.normpath(joined)
        if shown != root and not shown.startswith(os.path.join(root, "")):
            return None
        try:
            if ".." not in path.replace(os.sep, "/").split("/") and self._no_links(root, shown):
                return _path(shown)  # it is where it is shown: inside
            real = Path(joined).resolve()
            if self._real_root is None:
                self._real_root = self.root.resolve()
        except (OSError, ValueError, RuntimeError):  # a symlink loop
            return None
        return _path(shown) if real.is_relative_to(self._real_root) else None

    def _no_links(self, root: str, shown: str) -> bool:
        """No step from the root down to `shown` is a symlink (each step looked at once per
        project: a project's findings are in few directories). Plain string prefixes of
        `shown`: this runs for every finding of every run."""
        links, end = self._links, len(root)
        while True:
            end = shown.find(os.sep, end + 1)
            step = shown if end < 0 else shown[:end]
            link = links.get(step)
            if link is None:
                link = links[step] = os.path.islink(step)
            if link:
                return False
            if end < 0:
                return True


def normalize(raw: Any, root: Path) -> Finding | None:
    """One finding of the project at `root` in the fixed shape (positions clamped), or None
    when it is not usable (a handler's bug) or names a file outside the project."""
    finding = _shaped(raw)
    if finding is None or _Project(root).locate(finding["path"]) is None:
        return None
    return finding


class FileFindings(dict[Path, list[Finding]]):
    """Findings by absolute file path; `outside` counts those dropped for naming a file
    outside the project (said to the person: they are never listed or published)."""

    outside = 0


def findings_of(entry: Entry) -> FileFindings | None:
    """A result entry's findings by absolute file path, sorted by position.

    None when the entry says nothing about findings (it failed, was cancelled, or no result of
    its handlers has a `diagnostics` list): the previous findings of that action then stay.
    Findings for files outside the project are dropped and counted (`FileFindings.outside`).
    """
    return _findings(entry, _Project(Path(entry["project"])))


def _findings(entry: Entry, project: _Project) -> FileFindings | None:
    """`findings_of`, locating paths through `project` (shared by the entries of one root, so
    each path is looked at once per run)."""
    result = entry.get("result")
    # An action with several handlers returns their results as a list, in config order.
    parts = result if isinstance(result, list) else [result]
    lists = [p["diagnostics"] for p in parts
             if isinstance(p, dict) and isinstance(p.get("diagnostics"), list)]
    if entry.get("status") != "ok" or not lists:
        return None
    raw = [item for found in lists for item in found]
    by_file = FileFindings()
    for item in raw:
        finding = _shaped(item)
        if finding is None:
            continue
        path = project.locate(finding["path"])
        if path is None:
            by_file.outside += 1
        else:
            by_file.setdefault(path, []).append(finding)
    for findings in by_file.values():
        findings.sort(key=_order)
    return by_file


def _order(finding: Finding) -> tuple[int, int, str, str]:
    return finding["line"], finding["column"], finding.get("code", ""), finding["message"]


def _identity(finding: Finding) -> tuple[tuple[str, Any], ...]:
    """A finding without its path (relative to whichever project reported it): its other
    fields, all strings and integers (`_shaped`), in key order."""
    return tuple(sorted((k, v) for k, v in finding.items() if k != "path"))


def result_id(findings: list[Finding]) -> str:
    """Same findings, same id: a re-run that finds the same things reports `unchanged`."""
    text = json.dumps(findings, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


EMPTY_ID = result_id([])


class FindingStore:
    """Latest findings per (project, action); what each file shows is their union."""

    def __init__(self) -> None:
        self._sources: dict[tuple[Path, str], dict[Path, list[Finding]]] = {}
        self._reporters: dict[Path, set[tuple[Path, str]]] = {}  # file -> sources naming it
        self._shown: dict[Path, list[Finding]] = {}  # file -> the union
        self._ids: dict[Path, str] = {}  # file -> result id of its union, once asked for
        self._files: dict[Path, set[Path]] = {}  # project -> every file it ever reported on
        self._inputs: dict[Path, object] = {}  # project -> inputs at its last diagnostics run

    def record(self, project: Path, action: str,
               by_file: dict[Path, list[Finding]]) -> set[Path]:
        """Replace one action's findings; returns the files whose shown list changed (a re-run
        that finds the same, a cached result say, changes none)."""
        old = self._sources.get((project, action))
        self._sources[(project, action)] = by_file
        for path in set(old or ()) - set(by_file):
            self._reporters[path].discard((project, action))
        for path in by_file:
            self._reporters.setdefault(path, set()).add((project, action))
        touched = set(by_file) | set(old or ())
        self._files.setdefault(project, set()).update(touched)
        return self._update(touched)

    def _update(self, paths: Iterable[Path]) -> set[Path]:
        """Recompute the union of the given files (identical findings, e.g. from a project and
        a nested one that both lint a file, are shown once); the files whose union changed."""
        changed = set()
        for path in paths:
            found = self._union(path)
            if found != self._shown.get(path, []):
                changed.add(path)
                self._ids.pop(path, None)
            if found:
                self._shown[path] = found
            else:
                self._shown.pop(path, None)
        return changed

    def _union(self, path: Path) -> list[Finding]:
        reporters = self._reporters.get(path, ())
        if len(reporters) == 1:  # the usual case: one action's list
            (key,) = reporters
            own = self._sources[key].get(path, [])
            if len({_order(f) for f in own}) == len(own):  # no two alike: nothing to merge
                return sorted(own, key=_order)
        unique = {_identity(f): f for key in sorted(reporters)
                  for f in self._sources[key].get(path, ())}
        return sorted(unique.values(), key=_order)

    def items(self, path: Path) -> list[Finding]:
        """Everything every action found in `path`, sorted by position."""
        return self._shown.get(path, [])

    def result_id(self, path: Path) -> str:
        """Worked out when an editor asks (a terminal run never does)."""
        if path not in self._shown:
            return EMPTY_ID
        if path not in self._ids:
            self._ids[path] = result_id(self._shown[path])
        return self._ids[path]

    def files(self, project: Path) -> set[Path]:
        """Files `project` reported on at some point (those cleared since included)."""
        return self._files.get(project, set())

    def projects(self) -> set[Path]:
        return set(self._files) | set(self._inputs)

    def drop_project(self, project: Path) -> set[Path]:
        """Forget a project (removed from the workspace); returns its files, to be cleared."""
        for key in [key for key in self._sources if key[0] == project]:
            for path in self._sources.pop(key):
                self._reporters[path].discard(key)
        self._inputs.pop(project, None)
        files = self._files.pop(project, set())
        self._update(files)
        return files

    # -- inputs: has a project changed since its last diagnostics run? ----------------------

    def unchanged(self, project: Path, inputs: object) -> bool:
        return project in self._inputs and self._inputs[project] == inputs

    def ran_on(self, project: Path, inputs: object) -> None:
        self._inputs[project] = inputs


def inputs_of(project: Project) -> tuple[object, ...]:
    """What a project's findings depend on: its config, and size + mtime of its files.

    The files are the project's `*.py` (project-local handlers included) and its
    `pyproject.toml`, found the way discovery walks (tool and hidden directories skipped).
    """
    stats: list[tuple[str, int, int]] = []
    for current, dirs, files in os.walk(project.root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        for name in files:
            if name.endswith(".py") or (name == "pyproject.toml" and current == str(project.root)):
                path = os.path.join(current, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                stats.append((path, st.st_size, st.st_mtime_ns))
    stats.sort()
    config = repr(sorted((name, action.to_json()) for name, action in project.actions.items()))
    return (project.python, config, tuple(stats))


class RunFindings:
    """One run's findings, worked out once from its result entries: what every view of the run
    reads (the terminal's listing, table and footer, the MCP summary), so no finding is
    normalized or located twice."""

    def __init__(self, entries: list[Entry]) -> None:
        projects: dict[str, _Project] = {}
        self._entries = entries
        self._of: list[FileFindings | None] = []
        store = FindingStore()
        for entry in entries:
            root = entry["project"]
            project = projects.get(root)
            if project is None:
                project = projects[root] = _Project(Path(root))
            by_file = _findings(entry, project)
            self._of.append(by_file)
            if by_file is not None:
                store.record(project.root, entry["action"], by_file)
        files = {path for root in store.projects() for path in store.files(root)}
        # every finding once, grouped by file and sorted (as the editor shows them)
        self.listed: list[tuple[Path, Finding]] = [
            (path, finding) for path in sorted(files, key=str) for finding in store.items(path)]

    def count(self, index: int) -> int | None:
        """How many findings entry `index` reported (None: it reported no findings list)."""
        by_file = self._of[index]
        return None if by_file is None else sum(len(found) for found in by_file.values())

    def reported(self) -> int:
        """The entries' counts added up: more than `listed` holds when actions (or a project
        and a nested one) reported the same finding."""
        return sum(self.count(index) or 0 for index in range(len(self._of)))

    def outside_notes(self, names: dict[str, str]) -> list[str]:
        """One `outside_note` per entry that had findings for files outside its project."""
        return [outside_note(names.get(entry["project"], entry["project"]), entry["action"],
                             by_file.outside)
                for entry, by_file in zip(self._entries, self._of, strict=True)
                if by_file is not None and by_file.outside]


def outside_note(project: str, action: str, count: int) -> str:
    """The note for findings dropped because they named files outside their project."""
    return (f"{project} · {action}: dropped {count} finding(s) for files outside the project "
            "(a finding's path must be inside its project)")


def text_lines(found: list[tuple[Path, Finding]], base: Path) -> list[str]:
    """`path:line:col: CODE message` per finding, paths relative to `base`."""
    return [_text(relative_to(path, base), finding) for path, finding in found]


def relative_to(path: Path, base: Path) -> str:
    """`os.path.relpath` for an absolute, normalized `path`; the common case (under `base`)
    without its generality, as it runs for every finding listed."""
    text, under = str(path), os.path.join(str(base), "")
    if len(text) > len(under) and text.startswith(under) and os.path.isabs(text):
        return text[len(under):]
    return os.path.relpath(text, base)


def _text(shown: str, f: Finding) -> str:
    code = f"{f['code']} " if "code" in f else ""
    return f"{shown}:{f['line']}:{f['column']}: {code}{f['message']}"
