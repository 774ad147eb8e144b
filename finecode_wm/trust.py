"""Workspace trust: may the WM run a workspace's code when nobody asked for a run?

Handlers, project-local modules and a project's `python` come from the repository, so running
them is running the repository's code. An explicit request is consent for that run; work
nobody asked for (runner warm-up, diagnostic pulls, runs on file changes) needs trust: the
editor says so (`initializationOptions.trusted`), or the person ran `finecode-wm trust DIR`.

A trusted folder is remembered with a *key*: a hash of its projects' FineCode config and their
project-local handler files. Any edit changes the key and so revokes the trust, as
`direnv allow` does. The key (`fingerprint`) and the decision (`decide`) only read the
workspace; `TrustStore` is the one place that writes, and it writes only in the user's config
directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import config_dir
from .workspace import Project, Workspace, local_handler_files

__all__ = ["Decision", "FileCache", "SessionTrust", "TrustStore", "TrustStoreError", "decide",
           "fingerprint", "folder_keys", "store_path", "trust_hint"]

STORE_VERSION = 1
MAX_HASHED_INTERPRETER = 1 << 20  # a `python` script in the project is hashed; a copied binary too


def store_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/finecode/trust.json`, else `~/.config/finecode/trust.json`."""
    return config_dir(env) / "trust.json"


# -- the key ---------------------------------------------------------------------------------


class FileCache:
    """Digests and parsed tables of workspace files, reused while a file's stat is unchanged.

    The key is recomputed before every piece of unasked work (an editor may pull diagnostics
    every 2 s); parsing 128 pyproject.toml files each time would stall the server's loop.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[Path, str], tuple[tuple[int, ...], Any]] = {}

    def _cached(self, path: Path, kind: str, compute: Callable[[Path], Any]) -> Any:
        try:
            st = path.stat()
        except OSError as exc:
            return f"unreadable: {exc.strerror}"
        signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        seen = self._seen.get((path, kind))
        if seen is not None and seen[0] == signature:
            return seen[1]
        value = compute(path)
        self._seen[(path, kind)] = (signature, value)
        return value

    def digest(self, path: Path) -> str:
        return str(self._cached(path, "sha256", _digest_file))

    def finecode_table(self, root: Path) -> Any:
        """The raw `[tool.finecode]` table; a pyproject.toml that does not parse counts as bytes."""
        return self._cached(root / "pyproject.toml", "table", _finecode_table)


def _digest_file(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def _finecode_table(path: Path) -> Any:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {"pyproject.toml": _digest_file(path)}
    tool = data.get("tool")
    return tool.get("finecode") if isinstance(tool, dict) else None


def _interpreter(project: Project, files: FileCache) -> dict[str, str]:
    """The configured `python`; its content too when it lives in the project (e.g. a script)."""
    path = Path(project.python)
    entry = {"path": project.python}
    with contextlib.suppress(OSError):
        if (path.resolve().is_relative_to(project.root.resolve()) and path.is_file()
                and path.stat().st_size <= MAX_HASHED_INTERPRETER):
            entry["sha256"] = files.digest(path)
    return entry


def _project_entry(folder: Path, project: Project, files: FileCache) -> dict[str, Any]:
    table = files.finecode_table(project.root)
    sources = [h.source for action in project.actions.values() for h in action.handlers]
    handler_files = local_handler_files(project.root, sources)
    entry: dict[str, Any] = {
        "config": table,
        "handlers": {str(p.relative_to(folder)): files.digest(p) for p in handler_files},
    }
    if isinstance(table, dict) and "python" in table:
        entry["python"] = _interpreter(project, files)
    return entry


def fingerprint(folder: Path, projects: Iterable[Project], broken: Iterable[Path] = (),
                files: FileCache | None = None) -> str:
    """The key of `folder`: its projects' FineCode config and project-local handler files.

    `broken` are project roots whose config did not load: their pyproject.toml counts as it is,
    so fixing one (which makes it runnable) changes the key too.
    """
    files = files or FileCache()
    key: dict[str, Any] = {}
    for project in projects:
        key[str(project.root.relative_to(folder))] = _project_entry(folder, project, files)
    for root in broken:
        key[str(root.relative_to(folder))] = {"broken": files.digest(root / "pyproject.toml")}
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def folder_keys(workspace: Workspace, files: FileCache | None = None) -> dict[Path, str]:
    """The current key of each workspace folder, from the projects discovered in it."""
    files = files or FileCache()
    keys = {}
    for folder in workspace.folders:
        projects = [p for p in workspace.projects.values() if p.root.is_relative_to(folder)]
        broken = [r for r in workspace.problems if r.is_relative_to(folder)]
        keys[folder] = fingerprint(folder, projects, broken, files)
    return keys


# -- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether unasked work may run, and, when not, why (for the message to the person)."""

    trusted: bool
    by_editor: bool | None = None  # the editor's `trusted` option, None when it sent none
    untrusted: tuple[Path, ...] = ()  # folders never trusted (or revoked with `untrust`)
    changed: tuple[Path, ...] = ()  # folders trusted once, edited since
    store_problem: str | None = None
    states: dict[Path, str] = field(default_factory=dict)  # folder -> trusted|changed|untrusted


def decide(by_editor: bool | None, keys: Mapping[Path, str], stored: Mapping[str, str],
           store_problem: str | None = None) -> Decision:
    """The editor's word wins; otherwise every folder must be trusted with its current key."""
    states = {}
    for folder, key in keys.items():
        remembered = stored.get(str(folder))
        states[folder] = ("untrusted" if remembered is None
                          else "trusted" if remembered == key else "changed")
    untrusted = tuple(f for f, s in states.items() if s == "untrusted")
    changed = tuple(f for f, s in states.items() if s == "changed")
    if by_editor is not None:
        trusted = by_editor
    else:
        trusted = bool(keys) and not untrusted and not changed
    return Decision(trusted, by_editor, untrusted, changed, store_problem, states)


def trust_hint(decision: Decision) -> str:
    """What to tell a person whose workspace is not trusted: why, and the exact way out."""
    if decision.by_editor is False:
        return ("FineCode: this workspace is not trusted by the editor, so FineCode runs its "
                "handlers only when you ask (no warm-up, no automatic diagnostics). Trust the "
                "workspace in the editor to allow them.")
    folders = [*decision.changed, *decision.untrusted]
    why = ("this workspace's FineCode configuration or handler files changed since it was "
           "trusted" if decision.changed and not decision.untrusted
           else "this workspace is not trusted")
    commands = " and ".join(f"`finecode-wm trust {f}`" for f in folders)
    problem = f" ({decision.store_problem})" if decision.store_problem else ""
    return (f"FineCode: {why}{problem}, so FineCode runs the workspace's handlers only when you "
            "ask (no runner warm-up, no automatic diagnostics). To allow them, run "
            f"{commands or '`finecode-wm trust <folder>`'} in a terminal, or trust the "
            "workspace in the editor (initializationOptions.trusted).")


# -- the store (the only writer) -------------------------------------------------------------


class TrustStoreError(Exception):
    """The store exists but cannot be read: nothing is trusted until it is fixed or removed."""


class TrustStore:
    """`{"version": 1, "folders": {"/abs/folder": {"key": sha256}}}` in the user's config dir."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or store_path()

    def load(self) -> dict[str, str]:
        """Folder -> key; an absent store is empty, an unreadable one raises `TrustStoreError`."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TrustStoreError(f"cannot read the trust store {self.path}: "
                                  f"{exc.strerror}") from None
        try:
            data = json.loads(text)
            folders = data["folders"]
            if data.get("version") != STORE_VERSION or not isinstance(folders, dict):
                raise ValueError("unexpected layout")
            return {str(f): str(entry["key"]) for f, entry in folders.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrustStoreError(f"the trust store {self.path} is corrupt ({exc}); nothing is "
                                  "trusted until you delete it") from None

    def set(self, folder: Path, key: str | None) -> bool:
        """Trust `folder` with `key` (None: forget it); whether the store changed."""
        stored = self.load()
        name = str(folder)
        if key is None:
            if stored.pop(name, None) is None:
                return False
        else:
            stored[name] = key
        self._write({"version": STORE_VERSION,
                     "folders": {f: {"key": k} for f, k in sorted(stored.items())}})
        return True

    def _write(self, data: dict[str, Any]) -> None:
        """Atomic: a temporary file next to the store, then a rename over it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".trust-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class SessionTrust:
    """One session's view: the editor's word, the store, and whether the person was told."""

    def __init__(self, store: TrustStore | None = None, by_editor: bool | None = None) -> None:
        self.store = store or TrustStore()
        self.by_editor = by_editor
        self._told = False
        self._files = FileCache()

    def decide(self, workspace: Workspace) -> Decision:
        """Decided afresh each time: an edit since the last check revokes at once."""
        keys = folder_keys(workspace, self._files)
        try:
            stored, problem = self.store.load(), None
        except TrustStoreError as exc:
            stored, problem = {}, str(exc)
        return decide(self.by_editor, keys, stored, problem)

    def hint_once(self, decision: Decision) -> str | None:
        """The hint for skipped unasked work, the first time only (never when trusted)."""
        if decision.trusted or self._told:
            return None
        self._told = True
        return trust_hint(decision)
