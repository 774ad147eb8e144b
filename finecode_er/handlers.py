"""Turning a handler `source` ("module:attribute") into something the runner can await.

A runner serves every project of one environment, so two projects may each have a `checks.py`
with different code. Modules found under a project's root (*project-local*) are therefore loaded
per project and kept out of `sys.modules` between loads; every other module (an installed
package such as `finecode_examples`) is imported once and shared. Handler class instances are
per project either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["Handler", "HandlerLoadError", "ProjectHandlers", "describe_failure", "split_source"]

Handler = Callable[[dict[str, Any], Any], Awaitable[Any]]


class HandlerLoadError(Exception):
    """A handler source cannot be imported or is not an async handler."""


def split_source(source: str) -> tuple[str, str]:
    module_name, _, attr_path = source.partition(":")
    return module_name, attr_path


def _under(path: str | None, root: Path) -> bool:
    if not path:
        return False
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False


class ProjectHandlers:
    """The handlers of one project inside a (possibly shared) runner.

    `version` is the WM's signature of the project's local handler files: when it changes, the
    project-local modules are imported afresh on the next run (work in flight keeps the objects
    it already holds).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version: str | None = None
        self._modules: dict[str, ModuleType] = {}  # this project's local modules, by name
        self._handlers: dict[str, Handler] = {}

    def refresh(self, version: str | None) -> None:
        if version != self.version:
            self.version = version
            self._modules.clear()
            self._handlers.clear()

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
                f"cannot import handler '{source}': {describe_failure(exc)}"
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

    def _import(self, name: str) -> ModuleType:
        """Import `name` as this project sees it (synchronous: no other task runs meanwhile).

        A module found under the project root wins over one of the same name imported from
        elsewhere. The root goes first on `sys.path` for the duration, this project's earlier
        local modules are put back, and afterwards every module loaded from under the root is
        taken out of `sys.modules` again, so the next project gets its own copies.
        """
        local = self._modules.get(name)
        if local is not None:
            return local
        top = name.partition(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, [str(self.root)]) is None:
            return importlib.import_module(name)  # not the project's: shared by every project
        root = str(self.root)
        shadowed = {}
        if top in sys.modules:
            shadowed = {n: sys.modules.pop(n) for n in list(sys.modules)
                        if n == top or n.startswith(top + ".")}
        before = set(sys.modules)
        sys.modules.update(self._modules)
        sys.path.insert(0, root)
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(root)
            for module_name in set(sys.modules) - before:
                module = sys.modules[module_name]
                if module_name in self._modules or _under(getattr(module, "__file__", None),
                                                          self.root):
                    self._modules[module_name] = sys.modules.pop(module_name)
            sys.modules.update(shadowed)


def describe_failure(exc: BaseException) -> str:
    """`Type: message (at file:line in function)` — the innermost frame is where to look."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        frame = frames[-1]
        where = f" (at {frame.filename}:{frame.lineno} in {frame.name})"
    return f"{type(exc).__name__}: {exc}{where}"
