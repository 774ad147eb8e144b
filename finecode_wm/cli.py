"""`finecode-wm`: `lsp` for editors, `mcp` for agents; `run`, `list`, `trust` and `untrust` for
the terminal."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from finecode_er.config import positive_seconds
from finecode_er.wire import dumps

from . import history
from .batch import BadRequest, BatchOptions
from .findings import FORMATS, collect, config_error_annotations, failing, outside_notes, render
from .requests import RunRequest
from .service import FineCode
from .terminal import PlainRenderer, Renderer, TtyRenderer, summary_table
from .trust import SessionTrust, TrustStore, TrustStoreError, Unkeyable, folder_key

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2  # bad input, and a selected project whose config is broken
EXIT_INTERRUPTED = 130


def _seconds(text: str) -> float:
    """`--timeout`: a positive, finite number of seconds."""
    try:
        seconds = positive_seconds(float(text))
    except ValueError:
        seconds = None
    if seconds is None:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _count(text: str) -> int:
    """`--max-parallel`: a positive whole number."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finecode-wm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lsp = commands.add_parser("lsp", help="serve an editor over LSP on stdio")
    lsp.add_argument("--max-parallel", type=_count, default=None,
                     help="child executions at once (default: CPU count)")
    # vscode-languageclient (TransportKind.stdio) and other clients append it by convention.
    lsp.add_argument("--stdio", action="store_true",
                     help="serve on stdin/stdout (the default and only transport)")
    mcp = commands.add_parser("mcp", help="serve an MCP client (an agent) on stdio")
    mcp.add_argument("--workspace", default=".", metavar="DIR", help="workspace folder")
    mcp.add_argument("--max-parallel", type=_count, default=None)
    run = commands.add_parser("run", help="run actions across the workspace's projects")
    run.add_argument("actions", nargs="+", metavar="ACTION")
    run.add_argument("--project", action="append", default=None, metavar="PATH",
                     help="only this project (repeatable; default: all)")
    run.add_argument("--workspace", default=".", metavar="DIR", help="workspace folder")
    run.add_argument("--sequential", action="store_true", help="one child after another")
    run.add_argument("--stop-on-failure", action="store_true")
    run.add_argument("--timeout", type=_seconds, default=None,
                     help="seconds per child execution")
    run.add_argument("--max-parallel", type=_count, default=None)
    run.add_argument("--json", action="store_true", help="print results as JSON")
    run.add_argument("--output-format", choices=FORMATS, default="text",
                     help="how findings are listed: text (path:line:col: CODE message) or "
                          "github (GitHub Actions annotations)")
    run.add_argument("--exit-zero", action="store_true",
                     help="exit 0 even when findings were reported (failures still exit 1, "
                          "config errors 2)")
    listing = commands.add_parser("list", help="list projects and their actions")
    listing.add_argument("--workspace", default=".", metavar="DIR")
    listing.add_argument("--json", action="store_true")
    for name, text in (("trust", "allow background work (warm-up, diagnostics) in DIR as it "
                                 "is now; any later edit to its config or code revokes it"),
                       ("untrust", "forget that DIR was trusted")):
        command = commands.add_parser(name, help=text)
        command.add_argument("dir", metavar="DIR", help="workspace folder")
    return parser


def _service(workspace: str, console: Console, max_parallel: int | None = None, *,
             report_problems: bool = True) -> FineCode:
    """The service, with the workspace discovered. Skipped files are warned about; problems
    are printed as they are found unless the caller reports them itself (`run` does, per
    selected project)."""
    def report(problem: str) -> None:
        if report_problems:
            console.print(f"[bold red]config error:[/] {escape(problem)}", highlight=False,
                          soft_wrap=True)

    def warn(warning: str) -> None:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False,
                      soft_wrap=True)

    fine = FineCode(lambda _message: None, max_parallel=max_parallel, report=report, warn=warn)
    fine.set_folders([Path(workspace)])
    return fine


def _project_path(raw: str, workspace: str) -> str:
    """A relative `--project` is taken from the current directory when it exists there, else
    from the workspace folder (as MCP's `projects` are)."""
    if os.path.isabs(raw) or os.path.exists(raw):
        return os.path.abspath(raw)
    return os.path.abspath(os.path.join(workspace, raw))


def _request(args: argparse.Namespace) -> RunRequest:
    return RunRequest(
        actions=args.actions,
        projects=[_project_path(p, args.workspace) for p in args.project]
        if args.project else None,
        options=BatchOptions(concurrent=not args.sequential,
                             stop_on_failure=args.stop_on_failure, timeout=args.timeout))


async def _run(fine: FineCode, request: RunRequest, args: argparse.Namespace, out: Console,
               err: Console) -> int:
    renderer: Renderer | None = None
    if not args.json:
        renderer = TtyRenderer(err) if err.is_terminal else PlainRenderer(err)
    await fine.prepare()
    try:
        # the terminal takes a late percentage: a single child that begins after a cold start
        # still gets its bar
        batch = fine.batch(request, emit=renderer, late_percentage=True)
    except BadRequest as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    if renderer is not None:
        renderer.watch(batch.progress)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, batch.cancel)
    try:
        result = await batch.run()
    finally:
        # A second Ctrl-C while runners stop (a blocked handler gets a grace period) kills
        # them at once instead of interrupting the clean-up.
        loop.add_signal_handler(signal.SIGINT, fine.pool.kill_all)
        if renderer is not None:
            renderer.close()
        await fine.close()
        loop.remove_signal_handler(signal.SIGINT)
    entries: list[dict[str, Any]] = result["results"]
    found = collect(entries)
    config_errors: list[dict[str, str]] = result.get("config_errors", [])
    if args.json:
        summary = {**result["summary"], "findings": len(found),
                   "config_errors": len(config_errors)}
        out.print_json(dumps({**result, "summary": summary, "config_errors": config_errors}))
    else:
        lines = render(found, args.output_format, Path.cwd())
        if args.output_format == "github":
            lines = config_error_annotations(config_errors, Path.cwd()) + lines
        for line in lines:
            out.print(line, highlight=False, markup=False, emoji=False, soft_wrap=True)
        names = {str(p.root): p.name for p in fine.workspace.projects.values()}
        err.print(summary_table(entries, names))
        for entry in entries:
            if entry["status"] == "failed":
                err.print(f"[bold red]{names.get(entry['project'])} / {entry['action']}:[/] "
                          f"{escape(str(entry.get('error')))}", highlight=False, soft_wrap=True)
        if found:
            files = len({path for path, _ in found})
            err.print(f"Found {len(found)} finding(s) in {files} file(s).", highlight=False)
    names = {str(p.root): p.name for p in fine.workspace.projects.values()}
    for note in outside_notes(entries, names):  # with --json too: stderr is the person's
        err.print(f"[bold yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for problem in config_errors:
        err.print(f"[bold red]config error:[/] {escape(problem['project'])}: "
                  f"{escape(problem['error'])}", highlight=False, soft_wrap=True)
    if batch.cancelled:
        return EXIT_INTERRUPTED
    if config_errors:
        return EXIT_USAGE
    if any(e["status"] != "ok" for e in entries) or (failing(found) and not args.exit_zero):
        return EXIT_FAILED
    return 0


def _list(args: argparse.Namespace, out: Console, err: Console) -> int:
    fine = _service(args.workspace, err)
    projects = fine.list_projects()
    decision = SessionTrust().decide(fine.workspace)
    if decision.store_problem:
        err.print(f"[bold yellow]warning:[/] {escape(decision.store_problem)}", highlight=False)
    states = decision.states
    for project in projects:
        folder = next(f for f in states if Path(str(project["path"])).is_relative_to(f))
        project["trust"] = states[folder]
    if args.json:
        out.print_json(dumps(projects))
    else:
        for folder, state in states.items():
            hint = "" if state == "trusted" else (
                f" (to allow background work: finecode-wm trust {folder})")
            out.print(f"folder {folder}: {state}{hint}", highlight=False, markup=False,
                      soft_wrap=True)
        for project in projects:
            actions = ", ".join(project["actions"]) or "-"  # type: ignore[arg-type]
            out.print(f"{project['name']}  {project['path']}  [{actions}]", highlight=False,
                      markup=False, soft_wrap=True)
    return 0 if not fine.workspace.problems else EXIT_FAILED


def _trust(args: argparse.Namespace, out: Console, err: Console) -> int:
    """`trust DIR` remembers DIR's current key in the user's store; `untrust DIR` forgets it."""
    folder = Path(args.dir).resolve()
    if args.command == "trust" and not folder.is_dir():
        err.print(f"[bold red]error:[/] {escape(str(folder))} is not a directory", highlight=False)
        return EXIT_USAGE
    store = TrustStore()
    if store.path.resolve().is_relative_to(folder):
        err.print(f"[bold red]error:[/] the trust store {escape(str(store.path))} lies inside "
                  f"{escape(str(folder))}; a workspace must not hold its own trust (set "
                  "XDG_CONFIG_HOME to a directory outside it)", highlight=False,
                  soft_wrap=True)
        return EXIT_USAGE
    try:
        if args.command == "untrust":
            changed = store.set(folder, None)
            out.print(f"untrusted {folder}" if changed else f"{folder} was not trusted",
                      highlight=False, markup=False, soft_wrap=True)
            return 0
        fine = _service(str(folder), err)
        store.set(folder, folder_key(fine.workspace, folder))
    except (TrustStoreError, OSError, Unkeyable) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    count = len(fine.workspace.projects)
    out.print(f"trusted {folder} ({count} project{'s' * (count != 1)}); an edit to its FineCode "
              "config, its Python files or a project's interpreter revokes it", highlight=False,
              markup=False, soft_wrap=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "lsp":
        from .server import serve_stdio  # pygls only where it is needed

        sys.exit(serve_stdio(max_parallel=args.max_parallel))
    if args.command == "mcp":
        from .mcp import serve_stdio as serve_mcp  # the MCP SDK only where it is needed

        sys.exit(serve_mcp(Path(args.workspace), max_parallel=args.max_parallel))
    out, err = Console(), Console(stderr=True)
    if args.command == "list":
        sys.exit(_list(args, out, err))
    if args.command in ("trust", "untrust"):
        sys.exit(_trust(args, out, err))
    fine = _service(args.workspace, err, args.max_parallel, report_problems=False)
    kept = history.default_path()  # earlier runs' times weigh the bar by time
    fine.history = history.load(kept)
    code = asyncio.run(_run(fine, _request(args), args, out, err))
    history.save(fine.history, kept)
    sys.exit(code)
