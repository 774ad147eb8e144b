"""`finecode-wm`: one program, three doors. `lsp` serves an editor, `mcp` an agent; `run`,
`list`, `trust`, `untrust` and `daemon` are the terminal's (`cli`).

This module only reads the command line (`cli.arguments`) and opens the door it names: each front
end imports its own dependencies (pygls, the MCP SDK, rich) when it is the one that runs. A `run`
is first offered to a running daemon (`cli.client`, standard library only), before anything
else is imported: that is what makes a run through the daemon cheap.
"""

from __future__ import annotations

import os
import sys

from .cli import EXIT_INTERRUPTED

TYPE_CHECKING = False  # `typing` costs a run through the daemon ~3 ms to import
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    try:
        code = _open(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:
        # Ctrl-C outside a run's own handler (while the command's modules are imported, or a
        # second one while the results are written): the exit code says so, no traceback.
        code = EXIT_INTERRUPTED
    _exit_now(code)


def _open(words: list[str]) -> int:
    """Open the door `words` name; the terminal command's exit code (a server exits itself)."""
    if words[:1] == ["run"] and "--no-daemon" not in words and os.name == "posix":
        from .cli.client import forward

        answered = forward(words)
        if answered is not None:
            return answered
    from .cli.arguments import parse

    args = parse(words)
    if args.command == "lsp":
        from .lsp.server import serve_stdio  # pygls only where it is needed

        sys.exit(serve_stdio(max_parallel=args.max_parallel))
    if args.command == "mcp":
        from pathlib import Path

        from .mcp.server import serve_stdio as serve_mcp  # the MCP SDK only where it is needed

        sys.exit(serve_mcp(Path(args.workspace), max_parallel=args.max_parallel))
    if args.command == "daemon":
        if os.name != "posix":  # it hands file descriptors over a Unix socket
            print("finecode-wm: error: the daemon needs a POSIX system", file=sys.stderr)
            return 2
        from .cli.daemon import command

        return command(args.action, idle_timeout=args.idle_timeout)
    from .cli.commands import dispatch

    return dispatch(args)


def _exit_now(code: int) -> NoReturn:
    """End a terminal command without tearing the interpreter down: freeing every module and
    object costs tens of milliseconds after a run (a tenth of a warm one), and nothing is left
    to do by then (runners stopped, the cache written, files closed). What the command printed
    is flushed first. The usual way out is kept for a stream that cannot be flushed (a closed
    pipe), and under a profiler or a coverage tracer, which write their data at exit."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)
