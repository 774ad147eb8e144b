"""The terminal's commands: `run` (the aggregated stream as a live bar, the findings listing in
the format CI reads, the summary table, exit codes, Ctrl-C), `list`, `trust` and `untrust`.

`run` is the same code in the terminal's own process and in the daemon (`daemon`); what differs
is given to it: where its output goes (`Terminal`), where its service comes from and goes back
to (`Services`: a new one per command, or kept between commands), and what stops it (`Stops`:
this process's signals, or the caller's, relayed)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, cast

from rich.console import Console
from rich.markup import escape

from finecode_er.wire import dumps

from .. import __version__, history
from ..diagnostics import RunFindings, text_lines
from ..paths import folder_problem
from ..planning import BadRequest, BatchOptions
from ..pyproject_index import PyprojectIndex, index_path
from ..requests import RunRequest
from ..results import ConfigError, Entry, import_failure
from ..service import FineCode
from ..trust import (
    SessionTrust,
    TrustStore,
    TrustStoreError,
    Unkeyable,
    folder_state,
    what_changed,
)
from . import EXIT_INTERRUPTED
from .changes import GitError
from .formats import (
    failing,
    github_config_error,
    github_failure,
    github_lines,
    json_lines,
    sarif_log,
    statistics,
)
from .locate import NotInProject, project_upward, repository_root, split_words, targets
from .selection import narrow
from .terminal import PlainRenderer, Renderer, TtyRenderer, summary_table

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "Services", "Stops", "Terminal",
           "dispatch", "run_command"]

EXIT_FAILED = 1
EXIT_USAGE = 2  # bad input, and a selected project whose config is broken
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # each cancels every child cleanly
Found = list[tuple[Path, dict[str, Any]]]
OnStop = Callable[[int], None]


class Services(Protocol):
    """Where a command's service comes from (one per workspace folder and `--max-parallel`)
    and goes back to when the command is done with it."""

    def get(self, folder: Path, max_parallel: int | None) -> FineCode: ...

    async def release(self, service: FineCode) -> None: ...


class Stops(Protocol):
    """What stops a run: `on_stop(handler)` hands every later stop request (its signal number)
    to `handler`; None: to no one."""

    def on_stop(self, handler: OnStop | None) -> None: ...


class _OwnServices:
    """A terminal's own process: one service for the command, closed after it (its runners
    stopped, its cache written)."""

    def __init__(self) -> None:
        self._service: FineCode | None = None

    def get(self, folder: Path, max_parallel: int | None) -> FineCode:
        if self._service is None:
            self._service = FineCode(lambda _message: None, max_parallel=max_parallel)
        return self._service

    async def release(self, service: FineCode) -> None:
        await service.close()


class _Signals:
    """This process's SIGINT and SIGTERM (a CI job cancelled, `timeout`, `docker stop`): without
    them the WM died at once and its runners' handlers never cleaned up."""

    def on_stop(self, handler: OnStop | None) -> None:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            if handler is None:
                loop.remove_signal_handler(signum)
            else:
                loop.add_signal_handler(signum, handler, signum)


@dataclass
class Terminal:
    """Where a command writes: its stdout (`_Stdout`) and stderr, as the environment they were
    opened in asks (`NO_COLOR`, `TERM`, `COLUMNS`)."""

    out: _Stdout
    err: Console

    @classmethod
    def of(cls, stdout: TextIO, stderr: TextIO, environ: Mapping[str, str] | None = None
           ) -> Terminal:
        env = None if environ is None else dict(environ)
        return cls(_Stdout(stdout, env), Console(file=stderr, _environ=env))


def _service(workspace: Path, console: Console, services: Services,
             max_parallel: int | None = None, *, report_problems: bool = True) -> FineCode:
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

    service = services.get(workspace, max_parallel)
    service.speak_to(report=report, warn=warn)
    _discovered(service, workspace)
    return service


def _discovered(service: FineCode, folder: Path) -> None:
    """Discover the projects of `folder`, the pyproject.toml files unchanged since an earlier
    run answered from its index (`pyproject_index`) rather than parsed again."""
    index, path = PyprojectIndex(), index_path(folder)
    index.load(path)
    service.workspace.read = index.read
    service.set_folders([folder])
    if index.dirty:
        index.save(path)


def _discover(args: argparse.Namespace, err: Console, services: Services,
              max_parallel: int | None = None, *,
              report_problems: bool = True) -> FineCode | None:
    """The service for `--workspace`, or for the workspace found from the current directory:
    the current directory when projects lie under it, else the nearest project above it (not
    above the git work tree). None, said on `err`, when `--workspace` is no directory."""
    if args.workspace is not None:
        folder = Path(args.workspace)
        why = folder_problem(folder)
        if why is not None:
            err.print(f"[bold red]error:[/] workspace folder {escape(str(folder))} {why}",
                      highlight=False, soft_wrap=True)
            return None
        return _service(folder, err, services, max_parallel, report_problems=report_problems)
    cwd = Path.cwd()
    service = _service(cwd, err, services, max_parallel, report_problems=report_problems)
    if not service.workspace.projects and not service.workspace.problems:
        above = project_upward(cwd.resolve())
        if above is not None:
            service = _service(above, err, services, max_parallel,
                               report_problems=report_problems)
    return service


def _project_path(raw: str, workspace: Path) -> str:
    """A relative `--project` is taken from the current directory when it exists there, else
    from the workspace folder (as MCP's `projects` are)."""
    if os.path.isabs(raw) or os.path.exists(raw):
        return os.path.abspath(raw)
    return os.path.abspath(workspace / raw)


def _request(args: argparse.Namespace, service: FineCode) -> RunRequest:
    """The run's request: its actions, and its projects from `--project` or from the paths
    among the positional words (raises `BadRequest` on bad input)."""
    workspace = service.workspace

    def defined(word: str) -> bool:
        return any(word in p.actions for p in workspace.projects.values()) or any(
            names is not None and word in names for names in workspace.declares.values())

    actions, paths = split_words(args.words, defined, os.path.exists)
    if not actions:
        raise BadRequest(f"name an action to run before the paths ({' '.join(paths)})")
    projects = [_project_path(p, workspace.folders[0]) for p in args.project] \
        if args.project else None
    params: dict[str, Any] = {}
    if paths:
        if projects is not None:
            raise BadRequest("give --project or paths, not both")
        projects, params = _on_paths(paths, service)
    return RunRequest(
        actions=actions, projects=projects, params=params,
        options=BatchOptions(concurrent=not args.sequential,
                             stop_on_failure=args.stop_on_failure, timeout=args.timeout,
                             cache=not args.no_cache))


def _on_paths(paths: list[str], service: FineCode) -> tuple[list[str], dict[str, Any]]:
    """The projects that hold `paths` (or lie under them) and, when some project runs on part
    of itself only, the params that tell handlers which paths: `{"paths": [absolute]}`."""
    resolved = []
    for raw in paths:
        path = Path(raw).resolve()
        if not path.exists():
            raise BadRequest(f"{raw} does not exist")
        if not service.workspace.contains(path):
            folders = ", ".join(map(str, service.workspace.folders))
            raise BadRequest(f"{raw} is outside the workspace ({folders})")
        resolved.append(path)
    roots = [*service.workspace.projects, *service.workspace.problems]
    try:
        found = targets(resolved, roots)
    except NotInProject as exc:
        raise BadRequest(str(exc)) from None
    params = {"paths": [str(p) for p in resolved]} if found.partial else {}
    return [str(p) for p in found.projects], params


async def _run(service: FineCode, args: argparse.Namespace, out: _Stdout, err: Console,
               services: Services, stops: Stops) -> int:
    renderer: Renderer | None = None
    if not args.json and not args.quiet:
        renderer = TtyRenderer(err) if err.is_terminal else PlainRenderer(err)
    # no `service.prepare()`: `_discover` has just walked the folders and read the configs
    try:
        request = _request(args, service)
        if args.changed_since is not None or args.shard is not None:
            narrowed = narrow(service.workspace, request, changed_since=args.changed_since,
                              shard=args.shard, recorded=service.history.recorded())
            for note in narrowed.notes if not args.quiet else ():
                err.print(note, highlight=False, markup=False, soft_wrap=True)
            request = narrowed.request
            if not request.projects:
                if args.json:
                    out.print_json(dumps({"results": [], "summary": {
                        "ok": 0, "failed": 0, "cancelled": 0, "cached": 0, "findings": 0,
                        "config_errors": 0}, "config_errors": []}))
                else:  # what an empty run prints: a SARIF upload needs its (empty) log
                    _write(out, _listing(args, service, [], [], [], {}))
                return 0
        # the terminal takes a late percentage: a single child that begins after a cold start
        # still gets its bar
        batch = service.batch(request, emit=renderer, late_percentage=True)
    except (BadRequest, GitError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    if renderer is not None:
        renderer.watch(batch.progress)
    stopped_by: list[int] = []

    def stop(signum: int) -> None:
        stopped_by.append(signum)
        batch.cancel()

    stops.on_stop(stop)
    try:
        result = await batch.run()
    finally:
        # A second Ctrl-C while runners stop (a blocked handler gets a grace period) kills
        # them at once instead of interrupting the clean-up.
        stops.on_stop(lambda _signum: service.pool.kill_all())
        if renderer is not None:
            renderer.close()
        await services.release(service)
        stops.on_stop(None)
    entries = result["results"]
    findings = RunFindings(entries)
    found = findings.listed
    config_errors = result.get("config_errors", [])
    if args.json:
        summary = {**result["summary"], "cached": sum(bool(e.get("cached")) for e in entries),
                   "findings": len(found),
                   "config_errors": len(config_errors)}
        out.print_json(dumps({**result, "summary": summary, "config_errors": config_errors}))
    else:
        names = {str(p.root): p.name for p in service.workspace.projects.values()}
        failed = [e for e in entries if e["status"] == "failed" and not import_failure(e)]
        _write(out, _listing(args, service, found, failed, config_errors, names))
        if not args.quiet:
            if entries:  # nothing ran (only broken configs): no empty table
                err.print(summary_table(entries, names, findings, width=err.width))
        for entry in failed:  # a handler that did not import is a config error, said below
            err.print(f"[bold red]{escape(names.get(entry['project'], entry['project']))} / "
                      f"{escape(entry['action'])}:[/] {escape(str(entry.get('error')))}",
                      highlight=False, soft_wrap=True)
        if found and not args.quiet:
            err.print(_footer(findings), highlight=False, soft_wrap=True)
    names = {str(p.root): p.name for p in service.workspace.projects.values()}
    for note in findings.outside_notes(names):  # with --json too: stderr is the person's
        err.print(f"[bold yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for problem in config_errors:
        # most errors name the project's pyproject.toml: said once, relative to the project
        error = problem["error"].removeprefix(os.path.join(problem["project"], ""))
        err.print(f"[bold red]config error:[/] {escape(problem['project'])}: {escape(error)}",
                  highlight=False, soft_wrap=True)
    if batch.cancelled:  # 128 + the signal, as a shell reports a command a signal ended
        return 128 + stopped_by[0] if stopped_by else EXIT_INTERRUPTED
    if config_errors:
        return EXIT_USAGE
    if any(e["status"] != "ok" for e in entries) or (
            failing(found, args.fail_on) and not args.exit_zero):
        return EXIT_FAILED
    return 0


class _Stdout(Console):
    """stdout, whose reader may leave (`| head -1`): that ends the output, not the run (its
    table, clean-up and exit code stay; rich's own handler exits with 1 at once). A write that
    fails otherwise (a full disk) ends the output too and is kept in `failed`: the command says
    so and exits 2, as a truncated output must not pass for a result."""

    def __init__(self, stream: TextIO, environ: dict[str, str] | None = None) -> None:
        super().__init__(file=cast(IO[str], _Guarded(stream, self)), _environ=environ)
        self.failed: OSError | None = None

    def write_failed(self, exc: OSError) -> None:
        self.failed = self.failed or exc
        self.on_broken_pipe()

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)  # later writes, and the last flush, too
        os.dup2(devnull, self.file.fileno())
        os.close(devnull)


class _Guarded:
    """The stream of a `_Stdout`: a failed write or flush is handed to it instead of raised
    (a reader leaving is still raised: rich and `_write` end the output for it).

    Text goes to the file descriptor itself, every byte accounted for: Python's buffered
    writer drops the rest of a write the system took only in part (a disk that fills up, a
    file size limit) and reports success, so a cut `--json` or SARIF would pass for whole."""

    def __init__(self, stream: TextIO, owner: _Stdout) -> None:
        self._stream, self._owner = stream, owner

    def write(self, text: str) -> int:
        try:
            self._stream.flush()  # anything written around us goes first
            data = text.encode(self._stream.encoding or "utf-8", self._stream.errors or "strict")
            fd = self._stream.fileno()
            while data:
                data = data[os.write(fd, data):]
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._owner.write_failed(exc)
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self._owner.write_failed(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _write(out: Console, lines: list[str]) -> None:
    """Lines to stdout as they are (CI and tools parse them), in one write: one system call
    for the whole listing, not one per finding."""
    try:
        if lines:
            out.file.write("".join(f"{line}\n" for line in lines))
        out.file.flush()
    except BrokenPipeError:
        out.on_broken_pipe()


def _listing(args: argparse.Namespace, service: FineCode, found: Found,
             failed: list[Entry], config_errors: list[ConfigError],
             names: dict[str, str]) -> list[str]:
    """What goes to stdout in `--output-format`: the findings, and in the formats CI reads,
    the failed children and config errors too."""
    cwd = Path.cwd()
    failures = [(names.get(e["project"], e["project"]), e["action"], str(e.get("error")))
                for e in failed]
    broken = [(Path(e["project"]), e["error"]) for e in config_errors]
    if args.output_format == "github":
        return [*(github_config_error(*b) for b in broken), *map(github_failure, failures),
                *github_lines(found, cwd)]
    if args.output_format == "json-lines":
        return json_lines(found)
    if args.output_format == "sarif":
        folder = service.workspace.folders[0]
        root = repository_root(folder) or folder
        log = sarif_log(found, root=root, version=__version__, failures=failures,
                        config_errors=broken)
        return [dumps(log, indent=2)]
    return statistics(found) if args.statistics else text_lines(found, cwd)


def _footer(findings: RunFindings) -> str:
    """`Found N finding(s) in M file(s).`, saying why the table's counts add up to more when a
    finding was reported by more than one action (listed once)."""
    found = findings.listed
    files = len({path for path, _ in found})
    text = f"Found {len(found)} finding(s) in {files} file(s)"
    reported = findings.reported()
    if reported > len(found):
        text += (f" ({reported} in the table: {reported - len(found)} reported by more than "
                 "one action, listed once)")
    return text + "."


def _list(args: argparse.Namespace, out: Console, err: Console) -> int:
    service = _discover(args, err, _OwnServices())
    if service is None:
        return EXIT_USAGE
    projects = service.list_projects()
    decision = SessionTrust().decide(service.workspace)
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
            if state == "changed":
                what = what_changed(service.workspace, folder)
                if what:
                    out.print(f"  changed since trusted: {what}", highlight=False,
                              markup=False, soft_wrap=True)
        names = [str(project["name"]) for project in projects]
        paths = [str(project["path"]) for project in projects]
        name_width, path_width = max(map(len, names), default=0), max(map(len, paths), default=0)
        for name, path, project in zip(names, paths, projects, strict=True):
            actions = ", ".join(project["actions"]) or "-"  # type: ignore[arg-type]
            out.print(f"{name:<{name_width}}  {path:<{path_width}}  [{actions}]",
                      highlight=False, markup=False, soft_wrap=True)
    return 0 if not service.workspace.problems else EXIT_FAILED


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
        service = _service(folder, err, _OwnServices())
        store.set(folder, *folder_state(service.workspace, folder))
    except (TrustStoreError, OSError, Unkeyable) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_FAILED
    count = len(service.workspace.projects)
    out.print(f"trusted {folder} ({count} project{'s' * (count != 1)}); an edit to its FineCode "
              "config, its Python files or a project's interpreter revokes it", highlight=False,
              markup=False, soft_wrap=True)
    return 0

def dispatch(args: argparse.Namespace) -> int:
    """Run one terminal command (`run`, `list`, `trust`, `untrust`) in this process; its exit
    code."""
    terminal = Terminal.of(sys.stdout, sys.stderr)
    out, err = terminal.out, terminal.err
    try:
        os.getcwd()
    except FileNotFoundError:  # deleted under the shell: no path could be read from it
        err.print("[bold red]error:[/] the current directory no longer exists", highlight=False)
        return EXIT_USAGE
    if args.command == "list":
        code = _list(args, out, err)
    elif args.command in ("trust", "untrust"):
        code = _trust(args, out, err)
    else:
        code = asyncio.run(_run_command(args, terminal, _OwnServices(), _Signals()))
    return _said(terminal, code)


async def run_command(args: argparse.Namespace, terminal: Terminal, services: Services,
                      stops: Stops) -> int:
    """`run` for a caller elsewhere (the daemon's): its exit code."""
    return _said(terminal, await _run_command(args, terminal, services, stops))


def _said(terminal: Terminal, code: int) -> int:
    """`code`, or 2 after saying so when the output could not be written whole."""
    failed = terminal.out.failed
    if failed is not None:
        reason = failed.strerror or str(failed)
        terminal.err.print(f"[bold red]error:[/] cannot write the output: {escape(reason)}",
                           highlight=False, soft_wrap=True)
        return max(code, EXIT_USAGE) if code < EXIT_INTERRUPTED else code
    return code


async def _run_command(args: argparse.Namespace, terminal: Terminal, services: Services,
                       stops: Stops) -> int:
    out, err = terminal.out, terminal.err
    if args.statistics and (args.output_format != "text" or args.json):
        err.print("[bold red]error:[/] --statistics counts findings in the text format only "
                  "(not with --json or another --output-format)",
                  highlight=False)
        return EXIT_USAGE
    service = _discover(args, err, services, args.max_parallel, report_problems=False)
    if service is None:
        return EXIT_USAGE
    kept = history.default_path()  # earlier runs' times weigh the bar by time
    service.history = history.load(kept)
    try:
        return await _run(service, args, out, err, services, stops)
    finally:  # the times measured are kept even when the output could not be written
        history.save(service.history, kept)
