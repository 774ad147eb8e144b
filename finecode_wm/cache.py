"""The result cache: a child's result is reused while nothing that determines it changed.

Shared by the terminal, the editor's server and MCP (one directory under the user's cache
directory, `cache_store`), looked up by the WM from files and stats alone, so a run whose
results are all cached starts no runner.

An entry's **key** is what the WM can see: the action, the project, the action's config as the
runner gets it, the request's params, the interpreter (resolved path and content), FineCode's
version, and every file under the project's root and the roots it declares it depends on
(`depends_on`, transitively), with discovery's skipped directories and any venv left out: path
and content digest. Project-local handler code lies under the root, so it is in the key too.

What only the runner can see comes back with the first result (`finecode_er.caching`): that
every handler opted in, their declared versions, and the files and directories those versions
and the handlers' own code stand on (the tool's executable, configuration outside the project,
loaded modules, the site-packages listings). The entry records their digests; a lookup checks
them again, so an upgraded tool or an edited handler package is a miss without asking a runner.

Digests are reused while a file's stat is unchanged (`trust.FileCache`), and that index is kept
on disk between runs (`DigestIndex`): a warm lookup reads stats, not files. All blocking work
runs on one worker thread (`_Worker`), which also keeps the index and the store
single-threaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import finecode_er
from finecode_er.projectcode import skipped_dir
from finecode_er.safefile import read_regular

from . import __version__
from .cache_store import ResultStore, max_bytes_from_env
from .paths import cache_dir
from .trust import FileCache, Unkeyable, walk
from .workspace import Project, Workspace

__all__ = ["Checked", "DigestIndex", "Lookup", "ResultCache", "Subject", "default_dir", "key_of",
           "still_valid", "subject_of", "validity_of"]

KEY_FORMAT = 1
INDEX_VERSION = 1
INDEX_ENTRIES = 200_000  # file digests kept on disk per workspace
INDEX_MAX_BYTES = 256 * 1024 * 1024  # far above what INDEX_ENTRIES take
SAVE_EVERY = 5.0  # a long-lived server saves a changed index at most this often
CLOSE_WAIT = 5.0  # seconds `close` waits for the worker's last jobs


def default_dir() -> Path:
    """`$XDG_CACHE_HOME/finecode/results`, else `~/.cache/finecode/results`."""
    return cache_dir() / "results"


class DigestIndex(FileCache):
    """File digests and directory listings, reused while their stat is unchanged, and kept on
    disk between processes (`load` / `save`: the values of the `KINDS` kept)."""

    KINDS: tuple[str, ...] = ("sha256", "listing")

    def __init__(self) -> None:
        super().__init__()
        self.dirty = False

    def _cached(self, path: Path | str, kind: str, compute: Any) -> Any:
        def computed(target: Path) -> Any:
            self.dirty = True
            return compute(target)

        value = super()._cached(path, kind, computed)
        key = (os.fspath(path), kind)
        if key in self._seen:  # most recently used last: what `save` keeps when over the bound
            self._seen[key] = self._seen.pop(key)
        return value

    def listing(self, directory: str) -> str:
        """A digest of a directory's names (what an install or removal changes)."""
        return str(self._cached(directory, "listing", _listing_digest))

    def load(self, path: Path) -> None:
        """Digests saved by an earlier process; a missing or corrupt file adds none."""
        try:  # regular files only: a FIFO in its place would block the cache's worker
            data = json.loads(read_regular(path, INDEX_MAX_BYTES))
        except (OSError, ValueError, RecursionError):
            return
        entries = data.get("entries") if isinstance(data, dict) and \
            data.get("version") == INDEX_VERSION else None
        for item in entries if isinstance(entries, list) else []:
            if (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str)
                    and item[1] in self.KINDS and isinstance(item[3], str)
                    and isinstance(item[2], list) and len(item[2]) == 5
                    and all(isinstance(n, int) for n in item[2])):
                self._seen.setdefault((item[0], item[1]), (tuple(item[2]), item[3]))

    def save(self, path: Path) -> None:
        """Write atomically (the most recent `INDEX_ENTRIES`); failures are ignored."""
        kept = list(self._seen.items())[-INDEX_ENTRIES:]
        entries = [[name, kind, list(signature), value]
                   for (name, kind), (signature, value) in kept if kind in self.KINDS]
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": INDEX_VERSION, "entries": entries}))
            os.replace(tmp, path)
        except OSError:  # a full disk, say: leave no half-written file behind to fill it
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self.dirty = False


def _listing_digest(directory: Path) -> str:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


@dataclass(frozen=True)
class Subject:
    """What one child runs, as far as its result is concerned."""

    root: Path
    action: str
    config: dict[str, Any]
    params: dict[str, Any]
    python: str
    roots: tuple[Path, ...]  # the project's root, then the roots it depends on


def _dependencies(workspace: Workspace, project: Project) -> list[Path]:
    """The roots `project` declares it depends on, transitively (each once, in a stable
    order; a cycle ends where it closes)."""
    found: dict[Path, None] = {}
    todo = list(project.depends_on)
    while todo:
        root = todo.pop(0)
        if root in found or root == project.root:
            continue
        found[root] = None
        other = workspace.projects.get(root)
        if other is not None:
            todo += other.depends_on
    return sorted(found)


def subject_of(workspace: Workspace, project: Project, action: str,
               params: dict[str, Any]) -> Subject:
    return Subject(project.root, action, project.actions[action].to_json(), params,
                   project.environment_for(action).python,
                   (project.root, *_dependencies(workspace, project)))


def _pruned(path: str) -> bool:
    """Directories that are no project input: discovery's skips, and any venv."""
    return skipped_dir(os.path.basename(path)) or os.path.exists(os.path.join(path, "pyvenv.cfg"))


def _files(root: Path, roots: tuple[Path, ...], digests: FileCache) -> list[tuple[str, str]]:
    """Every input file under `root` with its digest. A symlinked directory that leads out of
    `roots` (a link to `/`, to a home directory) makes the subject unkeyable: what it holds is
    no input the project declared, and walking it could take any time."""
    real_roots: list[str] = []  # worked out at the first link (most projects have none)

    def pruned(path: str) -> bool:
        if _pruned(path):  # a venv linked from elsewhere is still no input
            return True
        if os.path.islink(path):
            real = os.path.realpath(path)
            real_roots[:] = real_roots or [os.path.realpath(r) for r in roots]
            if not any(real == r or real.startswith(os.path.join(r, "")) for r in real_roots):
                raise Unkeyable(f"{path} links to {real}, outside the project and the roots it "
                                "depends on (declare it in depends_on to cache its results)")
        return False

    return [(relative, digests.digest(absolute))
            for relative, absolute in walk(root, lambda _name: True, pruned, digests.listings)]


def key_of(subject: Subject, digests: FileCache) -> str | None:
    """The key of `subject` as its files are now; None when a root holds too much to walk or
    links out of the roots."""
    try:
        inputs = {str(root): _files(root, subject.roots, digests) for root in subject.roots}
    except Unkeyable:
        return None
    # The interpreter as configured (a venv's `bin/python`: its site-packages are the runner's
    # to report) and the content of the file it resolves to.
    python = subject.python
    text = json.dumps([KEY_FORMAT, finecode_er.__version__, __version__, subject.action,
                       str(subject.root), subject.config, subject.params,
                       [python, digests.digest(python)], inputs],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _edited_since_loaded(loaded: Any) -> bool:
    """A module file whose stat is not the one the runner saw: the runner ran other code than
    the file now holds (it imports a module once), so the file's digest says nothing of it."""
    if not isinstance(loaded, dict):
        return True
    for path, seen in loaded.items():
        try:
            st = os.stat(path)
        except (OSError, TypeError, ValueError):
            return True
        if seen != [st.st_mtime_ns, st.st_size]:
            return True
    return False


def validity_of(info: Any, digests: DigestIndex) -> dict[str, Any] | None:
    """What the runner said a cacheable result stands on, with the digests as they are now;
    None when the result may not be cached (or the runner's answer has the wrong shape)."""
    if not isinstance(info, dict) or info.get("cacheable") is not True:
        return None
    files, dirs, version = _strings(info.get("files")), _strings(info.get("dirs")), \
        info.get("version")
    if files is None or dirs is None or _edited_since_loaded(info.get("loaded", {})):
        return None
    return {"version": version, "files": {path: digests.digest(path) for path in files},
            "dirs": {path: digests.listing(path) for path in dirs}}


Checked = dict[tuple[str, str], str]  # (kind, path) -> its digest, as one run found it


def still_valid(validity: dict[str, Any], digests: DigestIndex,
                checked: Checked | None = None) -> bool:
    """Nothing the entry's version and handler code stand on has changed.

    `checked` holds what this run already found (the entries of one environment stand on the
    same few dozen files: each is looked at once per run, not once per entry)."""
    files, dirs = validity.get("files"), validity.get("dirs")
    if not isinstance(files, dict) or not isinstance(dirs, dict):
        return False
    seen: Checked = {} if checked is None else checked

    def now(kind: str, path: str) -> str:
        value = seen.get((kind, path))
        if value is None:
            value = seen[(kind, path)] = \
                digests.digest(path) if kind == "sha256" else digests.listing(path)
        return value

    return all(now("sha256", path) == digest for path, digest in files.items()) and \
        all(now("listing", path) == digest for path, digest in dirs.items())


Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]",
            asyncio.AbstractEventLoop]
Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class _Worker:
    """One thread running the cache's blocking jobs in order: started with the first job, then
    kept, idle, for the next ones (a daemon: it never holds the process up). Starting a thread
    blocks the event loop until the thread runs, a millisecond or more on a busy machine; one
    per burst of jobs cost a cold run of 72 children over 100 ms of its loop's time.

    Results go back to each event loop in batches: one wake-up hands over every result ready by
    then, not one per job (72 lookups handed over one by one cost ~15 ms of the loop's time).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._ready: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        self._started = False

    def call(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            start, self._started = not self._started, True
        self._jobs.put((function, args, future, loop))
        if start:
            threading.Thread(target=self._work, name="finecode-cache", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            function, args, future, loop = self._jobs.get()
            outcome: Outcome
            try:
                outcome = (future, function(*args), None)
            except BaseException as exc:  # the awaiting task gets it
                outcome = (future, None, exc)
            with self._lock:
                waiting = self._ready.setdefault(loop, [])
                waiting.append(outcome)
                wake = len(waiting) == 1  # else a wake-up is already on its way
            if wake:
                try:
                    loop.call_soon_threadsafe(self._deliver, loop)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    with self._lock:
                        self._ready.pop(loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            ready = self._ready.pop(loop, [])
        for future, value, error in ready:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


def _declined_as(project: Project, subject: Subject) -> tuple[str, str, str]:
    """What a "not cacheable" answer is kept by: the project, the action, its config and the
    project's handler code (worked out only once some child was declined: not on a warm
    terminal run's path)."""
    return (str(project.root), subject.action,
            json.dumps([subject.config, project.code_version()], sort_keys=True, default=str))


@dataclass
class Lookup:
    """One child's lookup: its key (None: not cacheable this time) and, on a hit, the result."""

    subject: Subject | None = None
    key: str | None = None
    hit: bool = False
    result: Any = None
    project: Project | None = None  # whose child: what a "not cacheable" answer is kept by


class ResultCache:
    """The cache as the batches use it: `lookup` before a child runs, `finished` with its
    runner's answer (which stores an ok result), `close` at the end of the process."""

    def __init__(self, workspace: Workspace, directory: Path | None = None, *,
                 max_bytes: int | None = None,
                 log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None, on_loop: bool = False) -> None:
        """`log` takes every problem; `warn` the first one, for a person: a cache that cannot
        read or write its directory costs every later run its speed, silently otherwise.
        `on_loop` does the blocking work on the event loop's own thread instead of the worker:
        for a process that has nothing else to serve while a run looks its children up (the
        daemon), where handing 72 lookups to a thread and back, each contending with the
        loop for the interpreter, costs more than the lookups themselves."""
        self._workspace = workspace
        self._log = log or (lambda _message: None)
        self._warn = warn
        self._warned = False
        self.store = ResultStore(directory or default_dir(),
                                 max_bytes if max_bytes is not None else max_bytes_from_env())
        self.digests = DigestIndex()
        self._worker = _Worker()
        self._on_loop = on_loop
        self._index: Path | None = None
        self._saved = time.monotonic()
        self._pending: set[asyncio.Future[Any]] = set()
        # Children whose runner said "not cacheable" (a handler that did not opt in), by project,
        # action, config and handler code: a long-lived server keys them no more. Only speed is
        # at stake: a handler that opts in later is cached once its config or code changes, or
        # in the next process.
        self._declined: set[tuple[str, str, str]] = set()

    # -- on the event loop ------------------------------------------------------------------

    def speak_to(self, warn: Callable[[str], None] | None) -> None:
        """Warnings go to `warn` from now on, the first one again (a daemon's next caller)."""
        self._warn, self._warned = warn, False

    async def lookup(self, project: Project, action: str, params: dict[str, Any], *,
                     read: bool = True, checked: Checked | None = None) -> Lookup:
        """The key of this child and, when `read`, a result stored under it that is still
        valid (`checked`: one dict per run, shared by its lookups, see `still_valid`).
        Anything unexpected makes it a child that is not cached, never a failure."""
        try:
            subject = subject_of(self._workspace, project, action, params)
            if self._declined and _declined_as(project, subject) in self._declined:
                return Lookup()
            lookup: Lookup = await self._call(self._lookup, subject, read, checked)
        except Exception as exc:  # a cache that cannot answer costs speed, never a result
            self._problem(f"result cache: {project.name}/{action} not looked up: {exc!r}")
            return Lookup()
        lookup.project = project
        return lookup

    def finished(self, lookup: Lookup, response: Any) -> Any:
        """The result in a runner's answer to a run that asked for `cacheInfo`; an ok result
        the runner says is cacheable is stored in the background."""
        if lookup.key is None or not (isinstance(response, dict)
                                      and set(response) == {"result", "cacheInfo"}):
            return response
        result, info = response["result"], response["cacheInfo"]
        if isinstance(info, dict) and info.get("cacheable") is False and \
                lookup.project is not None and lookup.subject is not None:
            self._declined.add(_declined_as(lookup.project, lookup.subject))
        if isinstance(info, dict) and info.get("cacheable") is True:
            future = asyncio.ensure_future(self._call(self._store, lookup, result, info))
            self._pending.add(future)
            future.add_done_callback(self._stored)
        return result

    def _stored(self, future: asyncio.Future[Any]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self._problem(f"result cache: a result was not stored: {future.exception()!r}")

    def _problem(self, message: str) -> None:
        self._log(message)
        if self._warn is not None and not self._warned:
            self._warned = True
            self._warn(f"{message} (runs still work; their results are not reused; "
                       f"cache directory: {self.store.directory})")

    async def settle(self) -> None:
        """Every store so far is written."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        """Stores written and the digest index saved, within `CLOSE_WAIT` seconds: a job that
        blocks (a file that never ends reading) must not keep the program from exiting (the
        worker is a daemon thread; what it did not write is only a later miss)."""
        async def finish() -> None:
            await self.settle()
            if self._index is not None:
                await self._call(self._save_index)

        try:
            await asyncio.wait_for(finish(), CLOSE_WAIT)
        except TimeoutError:
            self._log(f"result cache: still busy after {CLOSE_WAIT:.0f} s; not waiting for it")

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._on_loop:
            return function(*args)
        return await self._worker.call(function, *args)

    # -- on the worker thread ---------------------------------------------------------------

    def _open_index(self) -> None:
        if self._index is None:
            folders = "\n".join(sorted(map(str, self._workspace.folders)))
            name = hashlib.sha256(folders.encode()).hexdigest()[:16]
            self._index = self.store.directory / f"digests-{name}.index"
            self.digests.load(self._index)

    def _lookup(self, subject: Subject, read: bool, checked: Checked | None = None) -> Lookup:
        self._open_index()
        key = key_of(subject, self.digests)
        lookup = Lookup(subject, key)
        if key is not None and read:
            entry = self.store.get(key)
            if entry is not None and still_valid(entry["validity"], self.digests, checked):
                lookup.hit, lookup.result = True, entry["result"]
        self._save_index(every=SAVE_EVERY)
        return lookup

    def _store(self, lookup: Lookup, result: Any, info: dict[str, Any]) -> None:
        """Stored only when the inputs are still those the run started with (an edit while it
        ran may or may not be in its result)."""
        assert lookup.subject is not None and lookup.key is not None
        if key_of(lookup.subject, self.digests) != lookup.key:
            return
        validity = validity_of(info, self.digests)
        if validity is not None:
            self.store.put(lookup.key, {
                "project": str(lookup.subject.root), "action": lookup.subject.action,
                "created": time.time(), "validity": validity, "result": result})
        self._save_index(every=SAVE_EVERY)

    def _save_index(self, every: float = 0.0) -> None:
        if self._index is not None and self.digests.dirty and \
                time.monotonic() - self._saved >= every:
            self.digests.save(self._index)
            self._saved = time.monotonic()

