"""What a runner tells the WM's result cache about one execution (standard library only).

The WM keys a cached result on what it can see without a runner: the project's files, the
action's config, the interpreter. What only the runner can see comes back with the result
(`info`): whether every handler opted in, the versions handlers declare (ruff's, say), and the
files and directories that would change if that version or the handler's own code changed (the
tool's executable, the loaded modules' files, the site-packages directories). The WM records
their digests, so a later run can tell without a runner that none of them changed.

A handler opts in with `@cacheable(...)` (re-exported by `finecode_er.api`) or with
`cacheable = true` on its entry in `[tool.finecode]`; `cacheable = false` there opts out.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

__all__ = ["ATTRIBUTE", "Declaration", "VersionCache", "cache_info", "cacheable",
           "declaration_of"]

ATTRIBUTE = "__finecode_cache__"
F = TypeVar("F")
PathLike = str | os.PathLike[str]
Version = str | Callable[[], "str | Awaitable[str]"] | None
Inputs = Iterable[PathLike] | Callable[[Path], Iterable[PathLike]]


@dataclass(frozen=True, eq=False)
class Declaration:
    """A handler's opt-in: its tool's `version` (a string, or a callable evaluated once per
    runner) and extra `inputs` beyond the project's own files (paths, or a callable taking the
    project root; relative paths are taken from the project root)."""

    version: Version = None
    inputs: Inputs = ()


@overload
def cacheable(handler: F, /) -> F: ...


@overload
def cacheable(*, version: Version = None, inputs: Inputs = ()) -> Callable[[F], F]: ...


def cacheable(handler: F | None = None, /, *, version: Version = None,
              inputs: Inputs = ()) -> F | Callable[[F], F]:
    """Declare a handler's results reusable while the project's files, the action's config,
    the handler's code, `version` and `inputs` are unchanged.

    Decorate the handler function (for a class handler: its `run` method), bare (`@cacheable`)
    or called. `version` names what the files cannot tell (a tool's release); `inputs` are the
    files outside the project the result also depends on (the tool's executable,
    configuration read from parent directories). A path that does not exist is an input too:
    creating it changes the key.
    """
    declaration = Declaration(version, inputs)

    def mark(function: F) -> F:
        setattr(function, ATTRIBUTE, declaration)
        return function

    return mark if handler is None else mark(handler)


def declaration_of(handler: Any) -> Declaration | None:
    found = getattr(handler, ATTRIBUTE, None)
    return found if isinstance(found, Declaration) else None


class VersionCache:
    """What a runner remembers for the cache: declared versions, evaluated once per runner (a
    failure is remembered too), and each loaded module file's stat when it was first reported
    (`loaded`)."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[Declaration, str | BaseException]] = {}
        self.loaded: dict[str, list[int]] = {}
        self.module_files: dict[str, str | None] = {}  # a module's `__file__` -> its file

    def first_seen(self, paths: list[str]) -> dict[str, list[int]]:
        """`[mtime_ns, size]` of each module file as it was when this runner first reported
        it, about when it was imported: a file edited since then is not the code that ran."""
        for path in paths:
            if path not in self.loaded:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                self.loaded[path] = [st.st_mtime_ns, st.st_size]
        return {path: self.loaded[path] for path in paths if path in self.loaded}

    async def version(self, declaration: Declaration) -> str | None:
        """The declared version; raises what evaluating it raised."""
        if declaration.version is None or isinstance(declaration.version, str):
            return declaration.version
        known = self._known.get(id(declaration))
        if known is None or known[0] is not declaration:
            value: str | BaseException
            try:
                produced = declaration.version()
                if inspect.isawaitable(produced):
                    produced = await produced
                value = str(produced)
            except Exception as exc:
                value = exc
            known = self._known[id(declaration)] = (declaration, value)
        if isinstance(known[1], BaseException):
            raise known[1]
        return known[1]


def _declared_inputs(declaration: Declaration, root: Path) -> list[str]:
    raw = declaration.inputs(root) if callable(declaration.inputs) else declaration.inputs
    return [os.path.normpath(root / os.fspath(path)) for path in raw]


def _module_files(skip: Sequence[Path], known: dict[str, str | None]) -> list[str]:
    """Files of every loaded module outside the standard library and outside `skip` (project
    code: the WM keys it as the project's own files). This runs after every cacheable run, over
    every loaded module: what an absolute `__file__` makes of it is remembered in `known` (the
    same string always gives the same answer; a relative one depends on the working
    directory)."""
    files = set()
    stdlib = sys.stdlib_module_names
    skipped = [os.path.join(place, "") for place in map(str, skip)]
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if not isinstance(origin, str) or name.partition(".")[0] in stdlib:
            continue
        path = known[origin] if origin in known else _outside_stdlib(origin)
        if origin not in known and os.path.isabs(origin):
            known[origin] = path
        if path is not None and not any(path.startswith(place) for place in skipped):
            files.add(path)
    return sorted(files)


def _outside_stdlib(origin: str) -> str | None:
    """A module file's absolute path, None when it is the interpreter's own
    (`_sysconfigdata…`: its digest is in the key)."""
    path = os.path.abspath(origin)
    stdlib_dir = os.path.join(os.path.dirname(os.__file__), "")
    return None if path.startswith(stdlib_dir) and not _in_site(path) else path


def _in_site(path: str) -> bool:
    parts = path.split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts


def _site_dirs() -> list[str]:
    """The interpreter's package directories: an install, upgrade or removal changes their
    listing (a new `*.dist-info` name)."""
    return sorted({os.path.abspath(p) for p in sys.path if _in_site(p) and os.path.isdir(p)})


async def cache_info(handlers: Sequence[tuple[str, bool | None, Any]], root: Path, *,
                     delegated: bool, versions: VersionCache,
                     project_code: Sequence[Path] = ()) -> dict[str, Any]:
    """`{cacheable: true, version, files, dirs, loaded}` for a result that may be reused, else
    `{cacheable: false, reason}`.

    `handlers` are `(source, cacheable from config, handler)`: every one must opt in (by config
    or declaration) and none opt out; a run that delegated (`ctx.run_action`) depends on other
    projects' work and is never cacheable.
    """
    if delegated:
        return {"cacheable": False, "reason": "it ran other actions (ctx.run_action)"}
    version: list[str | None] = []
    inputs: list[str] = []
    for source, configured, handler in handlers:
        declaration = declaration_of(handler)
        if configured is False:
            return {"cacheable": False, "reason": f"handler '{source}' has cacheable = false"}
        if declaration is None:
            if configured is None:
                return {"cacheable": False,
                        "reason": f"handler '{source}' does not declare itself cacheable"}
            version.append(None)
            continue
        try:
            version.append(await versions.version(declaration))
            inputs += _declared_inputs(declaration, root)
        except Exception as exc:
            return {"cacheable": False,
                    "reason": f"handler '{source}': its cache declaration failed: "
                              f"{type(exc).__name__}: {exc}"}
    modules = _module_files([root, *project_code], versions.module_files)
    return {"cacheable": True, "version": version, "files": sorted(set(inputs) | set(modules)),
            "dirs": _site_dirs(), "loaded": versions.first_seen(modules)}
