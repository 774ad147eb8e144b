"""`finecode-wm`: `lsp` for editors, `run` and `list` for the terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from . import history
from .batch import BadRequest, BatchOptions
from .requests import RunRequest
from .service import FineCode
from .terminal import PlainRenderer, Renderer, TtyRenderer, summary_table

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finecode-wm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lsp = commands.add_parser("lsp", help="serve an editor over LSP on stdio")
    lsp.add_argument("--max-parallel", type=int, default=None,
                     help="child executions at once (default: CPU count)")
    run = commands.add_parser("run", help="run actions across the workspace's projects")
    run.add_argument("actions", nargs="+", metavar="ACTION")
    run.add_argument("--project", action="append", default=None, metavar="PATH",
                     help="only this project (repeatable; default: all)")
    run.add_argument("--workspace", default=".", metavar="DIR", help="workspace folder")
    run.add_argument("--sequential", action="store_true", help="one child after another")
    run.add_argument("--stop-on-failure", action="store_true")
    run.add_argument("--timeout", type=float, default=None, help="seconds per child execution")
    run.add_argument("--max-parallel", type=int, default=None)
    run.add_argument("--json", action="store_true", help="print results as JSON")
    listing = commands.add_parser("list", help="list projects and their actions")
    listing.add_argument("--workspace", default=".", metavar="DIR")
    listing.add_argument("--json", action="store_true")
    return parser


def _service(workspace: str, console: Console, max_parallel: int | None = None) -> FineCode:
    def report(problem: str) -> None:
        console.print(f"[bold red]config error:[/] {escape(problem)}", highlight=False)

    fine = FineCode(lambda _message: None, max_parallel=max_parallel, report=report)
    for problem in fine.set_folders([Path(workspace)]):
        report(problem)
    return fine


def _request(args: argparse.Namespace) -> RunRequest:
    return RunRequest(
        actions=args.actions,
        projects=[os.path.abspath(p) for p in args.project] if args.project else None,
        options=BatchOptions(concurrent=not args.sequential,
                             stop_on_failure=args.stop_on_failure, timeout=args.timeout))


async def _run(fine: FineCode, request: RunRequest, args: argparse.Namespace, out: Console,
               err: Console) -> int:
    renderer: Renderer | None = None
    if not args.json:
        renderer = TtyRenderer(err) if err.is_terminal else PlainRenderer(err)
    try:
        batch = fine.batch(request, emit=renderer)
    except BadRequest as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return EXIT_USAGE
    if renderer is not None:
        renderer.watch(batch.progress)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, batch.cancel)
    try:
        result = await batch.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if renderer is not None:
            renderer.close()
        await fine.close()
    entries: list[dict[str, Any]] = result["results"]
    if args.json:
        out.print_json(json.dumps(result))
    else:
        names = {str(p.root): p.name for p in fine.workspace.projects.values()}
        err.print(summary_table(entries, names))
        for entry in entries:
            if entry["status"] == "failed":
                err.print(f"[bold red]{names.get(entry['project'])} / {entry['action']}:[/] "
                          f"{escape(str(entry.get('error')))}", highlight=False)
    if batch.cancelled:
        return EXIT_INTERRUPTED
    return 0 if all(e["status"] == "ok" for e in entries) else EXIT_FAILED


def _list(args: argparse.Namespace, out: Console, err: Console) -> int:
    fine = _service(args.workspace, err)
    projects = fine.list_projects()
    if args.json:
        out.print_json(json.dumps(projects))
    else:
        for project in projects:
            actions = ", ".join(project["actions"]) or "-"  # type: ignore[arg-type]
            out.print(f"{project['name']}  {project['path']}  [{actions}]", highlight=False,
                      markup=False, soft_wrap=True)
    return 0 if not fine.workspace.problems else EXIT_FAILED


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "lsp":
        from .server import serve_stdio  # pygls only where it is needed

        sys.exit(serve_stdio(max_parallel=args.max_parallel))
    out, err = Console(), Console(stderr=True)
    if args.command == "list":
        sys.exit(_list(args, out, err))
    fine = _service(args.workspace, err, args.max_parallel)
    kept = history.default_path()  # earlier runs' times weigh the bar by time
    fine.history = history.load(kept)
    code = asyncio.run(_run(fine, _request(args), args, out, err))
    history.save(fine.history, kept)
    sys.exit(code)
