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
import glob
import hashlib
import json
import os
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finecode_er.projectcode import SOURCE_SUFFIXES, skipped_dir
from finecode_er.safefile import read_regular, stream_regular

from .paths import config_dir
from .workspace import Project, Workspace

if sys.platform != "win32":
    import fcntl

__all__ = ["Decision", "FileCache", "SessionTrust", "TrustStore", "TrustStoreError", "Unkeyable",
           "decide", "fingerprint", "folder_key", "folder_keys", "store_path", "trust_hint", "walk"]

STORE_VERSION = 1
RACY_NS = 2_000_000_000
MAX_WALKED = 250_000  # directory entries looked at per folder: beyond, the folder is unkeyable
_HEX = frozenset("0123456789abcdef")
_CUSTOMIZE = ("sitecustomize", "usercustomize")


def store_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/finecode/trust.json`, else `~/.config/finecode/trust.json`."""
    return config_dir(env) / "trust.json"


# -- the key ---------------------------------------------------------------------------------


class Unkeyable(Exception):
    """The folder cannot be keyed (too many files to walk, e.g. a symlink to `/`)."""


class FileCache:
    """Digests and parsed tables of workspace files, reused while a file's stat is unchanged.

    The key is recomputed before every piece of unasked work (an editor may pull diagnostics
    every 2 s): with nothing changed that costs one stat per file, no read. A file changed in
    the last `RACY_NS` is read again every time: a second write within the file system's
    timestamp granularity would leave its stat as it was (git's "racy" entries).
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[Path, str], tuple[tuple[int, ...], Any]] = {}

    def _cached(self, path: Path, kind: str, compute: Callable[[Path], Any]) -> Any:
        try:
            st = path.stat()
        except OSError as exc:
            return f"unreadable: {exc.strerror}"
        signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)
        seen = self._seen.get((path, kind))
        if seen is not None and seen[0] == signature:
            return seen[1]
        value = compute(path)
        if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - RACY_NS:
            self._seen[(path, kind)] = (signature, value)
        return value

    def digest(self, path: Path) -> str:
        return str(self._cached(path, "sha256", _digest_file))

    def finecode_table(self, root: Path) -> Any:
        """The raw `[tool.finecode]` table; a pyproject.toml that does not parse counts as bytes."""
        return self._cached(root / "pyproject.toml", "table", _finecode_table)


def _digest_file(path: Path) -> str:
    """SHA-256 of a regular file, streamed (no size cap); a FIFO or device is never opened
    for reading and gets a digest of its own."""
    sha = hashlib.sha256()
    try:
        stream_regular(path, sha.update)
    except OSError as exc:
        return f"unreadable: {exc}"
    return sha.hexdigest()


def _finecode_table(path: Path) -> Any:
    try:
        data = tomllib.loads(read_regular(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return {"pyproject.toml": _digest_file(path)}
    tool = data.get("tool")
    return tool.get("finecode") if isinstance(tool, dict) else None


def walk(top: Path, accept: Callable[[str], bool], prune: Callable[[Path], bool]
         ) -> Iterator[Path]:
    """Files under `top` whose name `accept`s, in sorted order, through symlinks.

    A directory is entered once (by device and inode: a symlink loop ends there); `prune`d
    ones are not entered; an unreadable one is yielded itself (its digest says so). Past
    `MAX_WALKED` entries looked at, raises `Unkeyable`.
    """
    seen: set[tuple[int, int]] = set()
    budget = MAX_WALKED
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            st = current.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(current) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError:
            yield current
            continue
        budget -= len(listed)
        if budget < 0:
            raise Unkeyable(f"more than {MAX_WALKED} entries under {top}")
        subdirs = []
        for entry in listed:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not prune(path):
                    subdirs.append(path)
            elif accept(entry.name):
                yield path
        stack.extend(reversed(subdirs))


def _venv_of(python: Path) -> Path | None:
    """The venv an interpreter path starts in: `pyvenv.cfg` beside it or one level up (as
    CPython looks for it, from the path as invoked, symlinks not resolved)."""
    for place in (python.parent, python.parent.parent):
        if os.path.lexists(place / "pyvenv.cfg"):
            return place
    return None


def _startup_hooks(venv: Path) -> Iterator[Path]:
    """What a venv runs at every interpreter start: `pyvenv.cfg`, and in its site-packages
    every `.pth` and `sitecustomize`/`usercustomize` (module, bytecode or package)."""
    yield venv / "pyvenv.cfg"
    sites = sorted({os.path.realpath(p): Path(p) for pattern in (
        "lib*/python*/site-packages", "Lib/site-packages")
        for p in glob.glob(str(venv / pattern))}.values())
    for site in sites:
        for place in (site, site / "__pycache__"):
            try:
                names = sorted(os.listdir(place))
            except OSError:
                continue
            for name in names:
                if (name.endswith(".pth") and place == site) or name.startswith(_CUSTOMIZE):
                    path = place / name
                    if path.is_dir():
                        yield from walk(path, lambda _n: True, lambda _p: False)
                    else:
                        yield path


def _relative(path: Path, folder: Path) -> str:
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def _interpreter(project: Project, folder: Path, files: FileCache) -> dict[str, Any]:
    """The configured `python` as it resolves (path and content, wherever it lies) and, for a
    venv inside the folder, its start-up hooks."""
    path = Path(project.python)
    resolved = Path(os.path.realpath(path))
    entry: dict[str, Any] = {"path": project.python, "resolved": str(resolved),
                             "sha256": files.digest(resolved)}
    venv = _venv_of(path)
    if venv is not None and venv.is_relative_to(folder):
        entry["venv"] = {"path": _relative(venv, folder),
                         "resolved": os.path.realpath(venv),
                         "hooks": {_relative(p, folder): files.digest(p)
                                   for p in _startup_hooks(venv)}}
    return entry


def _configured_python(table: Any) -> bool:
    return isinstance(table, dict) and "python" in table


def fingerprint(folder: Path, projects: Iterable[Project], broken: Iterable[Path] = (),
                files: FileCache | None = None) -> str:
    """The key of `folder`: what a runner can load for its projects (docs/trust.md).

    Every project's `[tool.finecode]` table and configured interpreter; every Python source
    file under the folder, through symlinks, outside the directories the runner refuses to load
    from (and the projects' venvs); `broken` project roots (config that did not load) by their
    pyproject.toml's bytes, so fixing one (which makes it runnable) changes the key too.
    Raises `Unkeyable` when the folder holds too much to walk.
    """
    files = files or FileCache()
    projects = list(projects)
    entries: dict[str, Any] = {}
    venvs = set()
    for project in projects:
        table = files.finecode_table(project.root)
        entry: dict[str, Any] = {"config": table}
        if _configured_python(table):
            entry["python"] = _interpreter(project, folder, files)
            venv = _venv_of(Path(project.python))
            if venv is not None:
                venvs.add(venv)
        entries[str(project.root.relative_to(folder))] = entry
    for root in broken:
        entries[str(root.relative_to(folder))] = {"broken": files.digest(root / "pyproject.toml")}
    code = {_relative(path, folder): files.digest(path) for path in walk(
        folder, lambda name: name.endswith(SOURCE_SUFFIXES),
        lambda path: skipped_dir(path.name) or path in venvs)}
    text = json.dumps({"projects": entries, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def folder_key(workspace: Workspace, folder: Path, files: FileCache | None = None) -> str:
    """The current key of one workspace folder, from the projects discovered in it."""
    projects = [p for p in workspace.projects.values() if p.root.is_relative_to(folder)]
    broken = [r for r in workspace.problems if r.is_relative_to(folder)]
    return fingerprint(folder, projects, broken, files)


def folder_keys(workspace: Workspace, files: FileCache | None = None) -> dict[Path, str]:
    """The current key of each workspace folder."""
    files = files or FileCache()
    return {folder: folder_key(workspace, folder, files) for folder in workspace.folders}


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


def decide(by_editor: bool | None, keys: Mapping[Path, str | None], stored: Mapping[str, str],
           store_problem: str | None = None) -> Decision:
    """The editor's word wins; otherwise every folder must be trusted with its current key.

    A folder's key may be None when it is not in the store (it is untrusted whatever its key),
    or a text that is no SHA-256 when it cannot be keyed (it matches nothing).
    """
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
    """`{"version": 1, "folders": {"/abs/folder": {"key": sha256}}}` in the user's config dir.

    `trust` and `untrust` run as separate processes, possibly at the same moment: each
    read-modify-write holds an exclusive lock (`trust.json.lock` next to the store), so none
    loses another's entry or brings back a removed one. Readers need no lock: every write
    replaces the store atomically.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or store_path()

    def load(self) -> dict[str, str]:
        """Folder -> key; an absent store is empty, an unreadable one raises `TrustStoreError`."""
        try:
            os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TrustStoreError(f"cannot read the trust store {self.path}: "
                                  f"{exc.strerror}") from None
        try:
            text = read_regular(self.path).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustStoreError(f"cannot read the trust store {self.path}: {exc}") from None
        try:
            data = json.loads(text)
            folders = data["folders"]
            if data.get("version") != STORE_VERSION or not isinstance(folders, dict):
                raise ValueError("unexpected layout")
            keys = {str(f): entry["key"] for f, entry in folders.items()}
            if not all(isinstance(k, str) and len(k) == 64 and set(k) <= _HEX
                       for k in keys.values()):
                raise ValueError("a key is not a SHA-256")
            return keys
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise TrustStoreError(f"the trust store {self.path} is corrupt ({exc}); nothing is "
                                  "trusted until you delete it") from None

    def set(self, folder: Path, key: str | None) -> bool:
        """Trust `folder` with `key` (None: forget it); whether the store changed."""
        with self._locked():
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

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes (POSIX `flock`; held until the descriptor closes)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"),
                     os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, data: dict[str, Any]) -> None:
        """Atomic: a temporary file next to the store, then a rename over it."""
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
        """Decided afresh each time: an edit since the last check revokes at once.

        Only folders in the store are keyed: one never trusted is untrusted whatever it holds.
        """
        try:
            stored, problem = self.store.load(), None
        except TrustStoreError as exc:
            stored, problem = {}, str(exc)
        keys: dict[Path, str | None] = {}
        for folder in workspace.folders:
            if str(folder) not in stored:
                keys[folder] = None
                continue
            try:
                keys[folder] = folder_key(workspace, folder, self._files)
            except Unkeyable as exc:
                keys[folder] = f"unkeyable: {exc}"
        return decide(self.by_editor, keys, stored, problem)

    def hint_once(self, decision: Decision) -> str | None:
        """The hint for skipped unasked work, the first time only (never when trusted)."""
        if decision.trusted or self._told:
            return None
        self._told = True
        return trust_hint(decision)
