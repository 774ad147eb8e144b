"""Turning a handler `source` ("module:attribute") into something the runner can await."""

from __future__ import annotations

import importlib
import inspect
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Handler", "HandlerLoadError", "describe_failure", "load_handler"]

Handler = Callable[[dict[str, Any], Any], Awaitable[Any]]


class HandlerLoadError(Exception):
    """A handler source cannot be imported or is not an async handler."""


def load_handler(source: str) -> Handler:
    """Import `module:attr`; accept an async function or a class with `async def run`."""
    module_name, _, attr_path = source.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise HandlerLoadError(
            f"cannot import handler '{source}': {describe_failure(exc)}"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerLoadError(
                f"cannot import handler '{source}': module '{module_name}' has no '{attr_path}'"
            ) from None
    if inspect.isclass(target):
        try:
            instance = target()
        except Exception as exc:
            raise HandlerLoadError(
                f"handler '{source}': cannot create {target.__name__}(): {describe_failure(exc)}"
            ) from exc
        target = getattr(instance, "run", None)
    if not inspect.iscoroutinefunction(target):
        raise HandlerLoadError(
            f"handler '{source}' must be an async function (params, ctx) "
            "or a class with 'async def run(self, params, ctx)'"
        )
    handler: Handler = target
    return handler


def describe_failure(exc: BaseException) -> str:
    """`Type: message (at file:line in function)` — the innermost frame is where to look."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        frame = frames[-1]
        where = f" (at {frame.filename}:{frame.lineno} in {frame.name})"
    return f"{type(exc).__name__}: {exc}{where}"
