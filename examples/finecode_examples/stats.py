"""A dependency-free ``stats`` handler: lines, functions and classes per project.

It needs nothing but the standard library, so it works in any project environment
and gives the WM a second, differently shaped workload next to ruff.
"""

from __future__ import annotations

import ast
import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finecode_examples._files import python_files, relpath

if TYPE_CHECKING:
    from finecode_er.api import RunActionContext


@dataclass(frozen=True)
class FileStats:
    """Counts for one file; ``parsed`` is false when it is not valid Python."""

    lines: int
    functions: int
    classes: int
    parsed: bool


async def stats(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Count lines, functions (sync and async, methods included) and classes.

    Unparsable files still contribute their lines and are listed in ``unparsable``.
    """
    root = ctx.project_root
    files = python_files(root, params)
    lines = functions = classes = 0
    unparsable: list[str] = []
    async with ctx.progress("Collecting stats", total=len(files), cancellable=True) as progress:
        for path in files:
            # A worker thread keeps the event loop free to deliver cancellation and
            # progress while a large file is being parsed.
            counts = await asyncio.to_thread(file_stats, path)
            lines += counts.lines
            functions += counts.functions
            classes += counts.classes
            if not counts.parsed:
                unparsable.append(relpath(path, root))
            await progress.advance(1, message=path.name)
    return {
        "files": len(files),
        "lines": lines,
        "functions": functions,
        "classes": classes,
        "unparsable": unparsable,
    }


def file_stats(path: Path) -> FileStats:
    """Measure one file; bytes are parsed so that PEP 263 encoding cookies apply."""
    source = path.read_bytes()
    lines = len(source.splitlines())
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError):  # ValueError: null bytes, on Python < 3.12
        return FileStats(lines=lines, functions=0, classes=0, parsed=False)
    nodes = list(ast.walk(tree))
    return FileStats(
        lines=lines,
        functions=sum(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in nodes),
        classes=sum(isinstance(node, ast.ClassDef) for node in nodes),
        parsed=True,
    )
