"""Workspace trust: may the WM run a workspace's code when nobody asked for a run?

Handlers, project-local modules and a project's `python` come from the repository, so running
them is running the repository's code. An explicit request is consent for that run; work
nobody asked for (runner warm-up, diagnostic pulls, runs on file changes) needs trust: the
editor says so (`initializationOptions.trusted`), or the person ran `finecode-wm trust DIR`.

A trusted folder is remembered with a *key* over what a runner can load for it: its projects'
FineCode config, every Python source file in it (through symlinks), and each configured
interpreter as it resolves with its venv's start-up hooks. Runners refuse the rest of the
project's code (bytecode, extension modules: `finecode_er.projectcode`), so an edit that could
change what runs changes the key and revokes the trust, as `direnv allow` does. The key
(`fingerprint`) and the decision (`decide`) only read the workspace; `TrustStore` is the one
place that writes, and it writes only in the user's config directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finecode_er.projectcode import SOURCE_SUFFIXES, skipped_dir
from finecode_er.safefile import read_regular, stream_regular

from .listings import RACY_NS, Listings, is_dir
from .paths import config_dir
from .trust_changes import changes, manifest, summary
from .workspace import Project, Workspace

if sys.platform != "win32":
    import fcntl

__all__ = ["Decision", "FileCache", "SessionTrust", "TrustStore", "TrustStoreError", "Unkeyable",
           "decide", "fingerprint", "folder_key", "folder_keys", "folder_state", "store_path",
           "trust_hint", "walk", "what_changed"]

STORE_VERSION = 1
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
        self._seen: dict[tuple[str, str], tuple[tuple[int, ...], Any]] = {}
        self.listings = Listings()  # the directories walked, reused the same way

    def _cached(self, path: Path | str, kind: str, compute: Callable[[Path], Any]) -> Any:
        try:
            st = os.stat(path)
        except OSError as exc:
            return f"unreadable: {exc.strerror}"
        signature = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)
        seen = self._seen.get((os.fspath(path), kind))
        if seen is not None and seen[0] == signature:
            return seen[1]
        value = compute(Path(path))
        if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - RACY_NS:
            self._seen[(os.fspath(path), kind)] = (signature, value)
        return value

    def digest(self, path: Path | str) -> str:
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
    import tomllib  # here: a terminal run that keys no trust never parses TOML for it

    try:
        data = tomllib.loads(read_regular(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return {"pyproject.toml": _digest_file(path)}
    tool = data.get("tool")
    return tool.get("finecode") if isinstance(tool, dict) else None


def walk(top: Path | str, accept: Callable[[str], bool], prune: Callable[[str], bool],
         listings: Listings | None = None) -> Iterator[tuple[str, str]]:
    """`(relative, absolute)` paths of the files under `top` whose name `accept`s, sorted,
    through symlinks.

    A directory is entered once (by device and inode: a symlink loop ends there); one whose
    name is `prune`d is not entered; an unreadable one is yielded itself (its digest says so).
    Past `MAX_WALKED` entries looked at, raises `Unkeyable`. Plain strings, not `Path`s: a
    re-check is mostly this loop. `listings` keeps the directories' listings between walks.
    """
    listings = listings or Listings()
    seen: set[tuple[int, int]] = set()
    budget = MAX_WALKED
    stack = [("", os.fspath(top))]
    while stack:
        relative, current = stack.pop()
        try:
            st = os.stat(current)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            listed = listings.entries(current, st)
        except OSError:
            yield relative, current
            continue
        budget -= len(listed)
        if budget < 0:
            raise Unkeyable(f"{top} has more than {MAX_WALKED} entries to walk (symlinks "
                            "followed), too many to key; trust it in the editor instead")
        subdirs = []
        for name, kind in listed:
            path = os.path.join(current, name)
            if is_dir(path, kind):
                if not prune(path):
                    subdirs.append((f"{relative}{name}/", path))
            elif accept(name):
                yield relative + name, path
        stack.extend(reversed(subdirs))


def _venv_of(python: str) -> str | None:
    """The venv an interpreter path starts in: `pyvenv.cfg` beside it or one level up (as
    CPython looks for it, from the path as invoked, symlinks not resolved)."""
    place = os.path.dirname(python)
    for _ in range(2):
        if os.path.lexists(os.path.join(place, "pyvenv.cfg")):
            return place
        place = os.path.dirname(place)
    return None


def _site_packages(venv: str) -> list[str]:
    """`lib*/python*/site-packages` (POSIX, `lib64` too) and `Lib/site-packages` (Windows),
    each directory once (`lib64` is often a link to `lib`)."""
    found: dict[tuple[int, int], str] = {}
    for lib in _listed(venv):
        if not lib.startswith(("lib", "Lib")):
            continue
        top = os.path.join(venv, lib)
        for candidate in [os.path.join(top, "site-packages")] + [
                os.path.join(top, name, "site-packages") for name in _listed(top)
                if name.startswith("python")]:
            with contextlib.suppress(OSError):
                st = os.stat(candidate)
                found.setdefault((st.st_dev, st.st_ino), candidate)
    return sorted(found.values())


def _listed(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def _startup_hooks(venv: str) -> Iterator[tuple[str, str]]:
    """What a venv runs at every interpreter start: `pyvenv.cfg`, and in its site-packages
    every `.pth` and `sitecustomize`/`usercustomize` (module, bytecode or package)."""
    yield "pyvenv.cfg", os.path.join(venv, "pyvenv.cfg")
    for site in _site_packages(venv):
        for place in (site, os.path.join(site, "__pycache__")):
            for name in _listed(place):
                if (name.endswith(".pth") and place == site) or name.startswith(_CUSTOMIZE):
                    path = os.path.join(place, name)
                    relative = os.path.relpath(path, venv)
                    if os.path.isdir(path):
                        for inner, absolute in walk(path, lambda _n: True, lambda _p: False):
                            yield f"{relative}/{inner}", absolute
                    else:
                        yield relative, path


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _interpreter(python: str, folder: str, files: FileCache,
                 venvs: dict[tuple[int, int], Any]) -> dict[str, Any]:
    """A configured `python` as it resolves (path and content, wherever it lies) and, for a
    venv inside the folder, its start-up hooks (read once per venv directory: `venvs`)."""
    resolved = os.path.realpath(python)
    entry: dict[str, Any] = {"resolved": resolved, "sha256": files.digest(resolved)}
    venv = _venv_of(python)
    if venv is not None and _inside(venv, folder):
        try:
            st = os.stat(venv)
        except OSError as exc:
            entry["venv"] = f"unreadable: {exc.strerror}"
            return entry
        identity = (st.st_dev, st.st_ino)
        if identity not in venvs:
            venvs[identity] = {relative: files.digest(path)
                               for relative, path in _startup_hooks(venv)}
        entry["venv"] = venvs[identity]
    return entry


def _interpreter_path(project: Project) -> str:
    """`project.python` with its leading `..` folded away where that is exactly what the OS
    does: a project root is a real directory (discovery follows no symlinks), so `root/..` is
    its parent. Projects sharing `../.venv/bin/python` then share one interpreter entry."""
    literal = project.python
    prefix = os.path.join(project.root, "")
    if literal.startswith(prefix):
        rest = literal[len(prefix):].split(os.sep)
        while rest and rest[0] == "..":
            rest.pop(0)
        if ".." not in rest:
            return os.path.normpath(literal)
    return literal


def _configured_python(table: Any) -> bool:
    return isinstance(table, dict) and "python" in table


def fingerprint(folder: Path, projects: Iterable[Project], broken: Iterable[Path] = (),
                files: FileCache | None = None) -> str:
    """The key of `folder`: what a runner can load for its projects (docs/trust.md); raises
    `Unkeyable` when the folder holds too much to walk."""
    return _key(_parts(folder, projects, broken, files))


def _key(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _parts(folder: Path, projects: Iterable[Project], broken: Iterable[Path] = (),
           files: FileCache | None = None) -> dict[str, Any]:
    """What the key of `folder` hashes.

    Every project's `[tool.finecode]` table and configured interpreter; every Python source
    file under the folder, through symlinks, outside the directories the runner refuses to load
    from (and the projects' venvs); `broken` project roots (config that did not load) by their
    pyproject.toml's bytes, so fixing one (which makes it runnable) changes the key too.
    Raises `Unkeyable` when the folder holds too much to walk.
    """
    files = files or FileCache()
    base = os.fspath(folder)
    entries: dict[str, Any] = {}
    interpreters: dict[str, Any] = {}  # by configured path
    venv_hooks: dict[tuple[int, int], Any] = {}  # projects often share one venv: read once
    for project in projects:
        table = files.finecode_table(project.root)
        entry: dict[str, Any] = {"config": table}
        if _configured_python(table):
            python = entry["python"] = _interpreter_path(project)
            if python not in interpreters:
                interpreters[python] = _interpreter(python, base, files, venv_hooks)
        entries[str(project.root.relative_to(folder))] = entry
    for root in broken:
        entries[str(root.relative_to(folder))] = {"broken": files.digest(root / "pyproject.toml")}
    venvs = {venv for python in interpreters if (venv := _venv_of(python)) is not None}
    code = {relative: files.digest(path) for relative, path in walk(
        base, lambda name: name.endswith(SOURCE_SUFFIXES),
        lambda path: skipped_dir(os.path.basename(path)) or path in venvs)}
    return {"projects": entries, "interpreters": interpreters, "code": code}


def folder_state(workspace: Workspace, folder: Path, files: FileCache | None = None
                 ) -> tuple[str, dict[str, str]]:
    """The current key of one workspace folder, and its manifest (what each part of it is, to
    tell later what changed: `trust_changes`)."""
    projects = [p for p in workspace.projects.values() if p.root.is_relative_to(folder)]
    broken = [r for r in workspace.problems if r.is_relative_to(folder)]
    parts = _parts(folder, projects, broken, files)
    return _key(parts), manifest(parts)


def folder_key(workspace: Workspace, folder: Path, files: FileCache | None = None) -> str:
    """The current key of one workspace folder, from the projects discovered in it."""
    return folder_state(workspace, folder, files)[0]


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

    A folder's key is None when it was not computed (the editor decides, or the folder is not
    in the store), or a text that is no SHA-256 when it cannot be keyed (it matches nothing).
    """
    states = {}
    for folder, key in keys.items():
        remembered = stored.get(str(folder))
        if by_editor is not None:
            states[folder] = "trusted" if by_editor else "untrusted"
        else:
            states[folder] = ("untrusted" if remembered is None
                              else "trusted" if remembered == key else "changed")
    untrusted = tuple(f for f, s in states.items() if s == "untrusted")
    changed = tuple(f for f, s in states.items() if s == "changed")
    if by_editor is not None:
        trusted = by_editor
    else:
        trusted = bool(keys) and not untrusted and not changed
    return Decision(trusted, by_editor, untrusted, changed, store_problem, states)


def what_changed(workspace: Workspace, folder: Path, store: TrustStore | None = None
                 ) -> str | None:
    """What changed in a trusted folder since it was trusted, by project and file (None when
    the store kept no manifest, or the folder cannot be keyed now)."""
    kept = (store or TrustStore()).parts(folder)
    if not kept:
        return None
    try:
        _, now = folder_state(workspace, folder)
    except Unkeyable:
        return None
    projects = {str(p.root.relative_to(folder)): p.name
                for p in workspace.projects.values() if p.root.is_relative_to(folder)}
    return summary(changes(kept, now, projects)) or None


def trust_hint(decision: Decision, changed: Mapping[Path, str] | None = None) -> str:
    """What to tell a person whose workspace is not trusted: why (`changed`: what changed in
    each changed folder, when known), and the exact way out."""
    if decision.by_editor is False:
        return ("FineCode: this workspace is not trusted by the editor, so FineCode runs its "
                "handlers only when you ask (no warm-up, no automatic diagnostics). Trust the "
                "workspace in the editor to allow them.")
    folders = [*decision.changed, *decision.untrusted]
    why = ("this workspace's FineCode configuration, Python files or interpreter changed since "
           "it was trusted" if decision.changed and not decision.untrusted
           else "this workspace is not trusted")
    commands = " and ".join(f"`finecode-wm trust {f}`" for f in folders)
    problem = f" ({decision.store_problem})" if decision.store_problem else ""
    what = "; ".join(f"{text}" if len(decision.changed) == 1 else f"{folder}: {text}"
                     for folder, text in (changed or {}).items())
    if what:
        why += f" ({what})"
    return (f"FineCode: {why}{problem}, so FineCode runs the workspace's handlers only when you "
            "ask (no runner warm-up, no automatic diagnostics). To allow them, run "
            f"{commands or '`finecode-wm trust <folder>`'} in a terminal, or trust the "
            "workspace in the editor (initializationOptions.trusted).")


# -- the store (the only writer) -------------------------------------------------------------


class TrustStoreError(Exception):
    """The store exists but cannot be read: nothing is trusted until it is fixed or removed."""


class TrustStore:
    """`{"version": 1, "folders": {"/abs/folder": {"key": sha256, "parts": {…}}}}` in the user's
    config dir (`parts`: what each part of the key was, to say what changed since).

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

    def set(self, folder: Path, key: str | None, parts: dict[str, str] | None = None) -> bool:
        """Trust `folder` with `key` and its manifest `parts` (None: forget it); whether the
        store changed."""
        with self._locked():
            stored = self.load()
            kept = self._manifests()
            name = str(folder)
            if key is None:
                kept.pop(name, None)
                if stored.pop(name, None) is None:
                    return False
            else:
                stored[name] = key
                kept[name] = parts or {}
            self._write({"version": STORE_VERSION,
                         "folders": {f: {"key": k, "parts": kept.get(f, {})}
                                     for f, k in sorted(stored.items())}})
            return True

    def parts(self, folder: Path) -> dict[str, str] | None:
        """The manifest `folder` was trusted with (None: none kept, or the store is unreadable)."""
        return self._manifests().get(str(folder))

    def _manifests(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(read_regular(self.path).decode("utf-8"))
            folders = data["folders"]
            return {str(f): {str(k): str(v) for k, v in entry["parts"].items()}
                    for f, entry in folders.items() if isinstance(entry.get("parts"), dict)}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return {}

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

        Only folders in the store are keyed, and only when the editor gave no word: a folder
        never trusted is untrusted whatever it holds.
        """
        try:
            stored, problem = self.store.load(), None
        except TrustStoreError as exc:
            stored, problem = {}, str(exc)
        keys: dict[Path, str | None] = {}
        for folder in workspace.folders:
            if self.by_editor is not None or str(folder) not in stored:
                keys[folder] = None  # the editor's word decides, or nothing to compare with
                continue
            try:
                keys[folder] = folder_key(workspace, folder, self._files)
            except Unkeyable as exc:
                keys[folder] = f"unkeyable: {exc}"
        return decide(self.by_editor, keys, stored, problem)

    def hint_once(self, decision: Decision, workspace: Workspace | None = None) -> str | None:
        """The hint for skipped unasked work, the first time only (never when trusted); with
        `workspace`, it names what changed in a folder trusted before."""
        if decision.trusted or self._told:
            return None
        self._told = True
        changed = {}
        if workspace is not None:
            for folder in decision.changed:
                what = what_changed(workspace, folder, self.store)
                if what:
                    changed[folder] = what
        return trust_hint(decision, changed)
