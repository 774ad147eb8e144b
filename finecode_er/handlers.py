"""Turning a handler `source` ("module:attribute") into something the runner can await.

A runner serves every project of one environment, so two projects may each have a `checks.py`
with different code. Modules loaded from a project's root (*project-local*) are therefore loaded
per project and kept out of `sys.modules` between loads; every other module (an installed
package such as `finecode_examples`) is imported once and shared. Handler class instances are
per project either way. A consequence: project-local modules are importable while their
project's handlers are imported (module-level imports), not by an import run later inside a
handler body; a project that needs that sets `isolated = true`: the runner of an isolated
project (or one started for a single project) keeps that project on `sys.path` instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .projectcode import protect

__all__ = ["Handler", "HandlerLoadError", "ProjectHandlers", "describe_failure", "split_source"]

Handler = Callable[[dict[str, Any], Any], Awaitable[Any]]


class HandlerLoadError(Exception):
    """A handler source cannot be imported or is not an async handler."""


def split_source(source: str) -> tuple[str, str]:
    module_name, _, attr_path = source.partition(":")
    return module_name, attr_path


def _is_local(module: ModuleType, name: str, root: Path) -> bool:
    """Loaded through the project root's own path entry: `root/<top>.py` or `root/<top>/…`.

    A file that merely lies under the root (a `.venv` inside the project) is not local.
    """
    origin = getattr(module, "__file__", None)
    if not origin:
        return False
    try:
        relative = Path(origin).resolve().relative_to(root)
    except (OSError, ValueError):
        return False
    top = name.partition(".")[0]
    first = relative.parts[0] if relative.parts else ""
    return first == top or first.startswith(top + ".")


class _ProjectFinder(importlib.abc.MetaPathFinder):
    """Finds top-level modules in one project root (only `names`, when given)."""

    def __init__(self, root: Path, names: set[str] | None = None) -> None:
        self.root = str(root)
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or (self.names is not None and fullname not in self.names):
            return None  # submodules resolve through their package's __path__
        return importlib.machinery.PathFinder.find_spec(fullname, [self.root])


class ProjectHandlers:
    """The handlers of one project inside a (possibly shared) runner.

    `version` is the WM's signature of the project's local handler files: when it changes, the
    project-local modules are imported afresh on the next run (work in flight keeps the objects
    it already holds).
    """

    def __init__(self, root: Path, *, resident: bool = False) -> None:
        self.root = root
        protect(root)  # its modules load from source only (workspace trust)
        self.resident = resident  # the runner's own project: on sys.path, modules stay loaded
        self.version: str | None = None
        self._modules: dict[str, ModuleType] = {}  # this project's local modules, by name
        self._handlers: dict[str, Handler] = {}
        self._files = ""  # `_loaded_files()` when the modules were loaded

    def refresh(self, version: str | None) -> None:
        """Forget the loaded code when the WM's version or any loaded local file changed."""
        if version != self.version or (self._modules and self._loaded_files() != self._files):
            self.version = version
            if self.resident:
                for module_name in self._modules:
                    sys.modules.pop(module_name, None)
            self._modules.clear()
            self._handlers.clear()
            self._files = ""

    def load(self, source: str) -> Handler:
        handler = self._handlers.get(source)
        if handler is None:
            handler = self._handlers[source] = self._resolve(source)
        return handler

    def _resolve(self, source: str) -> Handler:
        module_name, attr_path = split_source(source)
        try:
            target: Any = self._import(module_name)
        except Exception as exc:
            raise HandlerLoadError(
                f"cannot import handler '{source}': {describe_failure(exc)}{self._searched(exc)}"
            ) from exc
        for part in attr_path.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise HandlerLoadError(
                    f"cannot import handler '{source}': module '{module_name}' has no "
                    f"'{attr_path}'") from None
        if inspect.isclass(target):
            try:
                instance = target()
            except Exception as exc:
                raise HandlerLoadError(
                    f"handler '{source}': cannot create {target.__name__}(): "
                    f"{describe_failure(exc)}") from exc
            target = getattr(instance, "run", None)
        if not inspect.iscoroutinefunction(target):
            raise HandlerLoadError(
                f"handler '{source}' must be an async function (params, ctx) "
                "or a class with 'async def run(self, params, ctx)'"
            )
        handler: Handler = target
        return handler

    def _searched(self, exc: Exception) -> str:
        """For a module that was not found: the interpreter and where it looked, which is what
        a person needs to fix it (install the package there, or point `python` elsewhere)."""
        if not isinstance(exc, ModuleNotFoundError):
            return ""
        path = ", ".join(p or "." for p in sys.path)
        return (f"; interpreter {sys.executable} looked in the project root {self.root}, then "
                f"sys.path: {path}")

    def _import(self, name: str) -> ModuleType:
        """Import `name` as this project sees it (synchronous: no other task runs meanwhile).

        The handler's own top-level module is looked up in the project root first (a local
        `checks.py` wins over an installed `checks`); the modules it imports resolve as usual,
        falling back to the project root for names nothing else provides. The root is never put
        on `sys.path`, so a shared module imported meanwhile cannot pick up project code.
        Afterwards every module loaded from the root is taken out of `sys.modules` again, so
        the next project gets its own copies.
        """
        local = self._modules.get(name)
        if local is not None:
            return local
        if self.resident:
            return self._import_resident(name)
        top = name.partition(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, [str(self.root)]) is None:
            return importlib.import_module(name)  # not the project's: shared by every project
        shadowed = {n: sys.modules.pop(n) for n in list(sys.modules)
                    if n == top or n.startswith(top + ".")} if top in sys.modules else {}
        before = set(sys.modules)
        sys.modules.update(self._modules)
        first, fallback = _ProjectFinder(self.root, {top}), _ProjectFinder(self.root)
        sys.meta_path.insert(0, first)
        sys.meta_path.append(fallback)
        try:
            return importlib.import_module(name)
        finally:
            sys.meta_path.remove(first)
            sys.meta_path.remove(fallback)
            for module_name in set(sys.modules) - before:
                module = sys.modules[module_name]
                if module_name in self._modules or _is_local(module, module_name, self.root):
                    self._modules[module_name] = sys.modules.pop(module_name)
            sys.modules.update(shadowed)
            self._files = self._loaded_files()

    def _import_resident(self, name: str) -> ModuleType:
        """The runner's own project: a plain import; its local modules are remembered."""
        before = set(sys.modules)
        try:
            return importlib.import_module(name)
        finally:
            for module_name in set(sys.modules) - before:
                if _is_local(sys.modules[module_name], module_name, self.root):
                    self._modules[module_name] = sys.modules[module_name]
            self._files = self._loaded_files()

    def _loaded_files(self) -> str:
        """Sizes and mtimes of every local module loaded so far (helpers included)."""
        parts = []
        for module in self._modules.values():
            origin = getattr(module, "__file__", None)
            if origin:
                try:
                    st = os.stat(origin)
                except OSError:
                    parts.append(f"{origin}:-")
                else:
                    parts.append(f"{origin}:{st.st_size}:{st.st_mtime_ns}")
        return "|".join(sorted(parts))


_RUNNER = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__))


def _internal(filename: str) -> bool:
    """A frame of the runner itself or of the import machinery: never where to look."""
    if filename.startswith("<frozen "):
        return True
    folder = os.path.dirname(os.path.abspath(filename))
    return folder in (_RUNNER, _IMPORTLIB)


def describe_failure(exc: BaseException) -> str:
    """`Type: message (at file:line in function)`: the innermost frame outside the runner and
    the import machinery is where to look (the handler's line that called `ctx.run_action`, the
    line of a handler module that failed to import); none when there is no such frame."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _internal(f.filename)]
    where = ""
    if frames:
        frame = frames[-1]
        where = f" (at {frame.filename}:{frame.lineno} in {frame.name})"
    return f"{type(exc).__name__}: {exc}{where}"
