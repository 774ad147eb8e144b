"""The command line of every door (`finecode-wm lsp|mcp|run|list|trust|untrust|daemon`), the
terminal's own interface: read here, the door it names opened by `main`."""

from __future__ import annotations

import argparse
from pathlib import Path

from finecode_er.config import positive_seconds

from ..paths import folder_problem
from .formats import FORMATS, LEVELS
from .shards import parse_shard

__all__ = ["IDLE_TIMEOUT", "parse"]

IDLE_TIMEOUT = 1800.0  # seconds a daemon waits for a run before it stops

WORKSPACE_HELP = ("workspace folder (default: the current directory when projects lie under it, "
                  "else the nearest project above it)")
_DESCRIPTION = ("`finecode-wm`: `lsp` for editors, `mcp` for agents; `run`, `list`, `trust`, "
                "`untrust` and `daemon` for the terminal.")


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


def _shard(text: str) -> tuple[int, int]:
    """`--shard`: `I/N`, 1 <= I <= N."""
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _folder(text: str) -> str:
    """`mcp --workspace`: an existing directory (an agent's server must not start on none)."""
    why = folder_problem(Path(text))
    if why is not None:
        raise argparse.ArgumentTypeError(f"workspace folder {text} {why}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finecode-wm", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    lsp = commands.add_parser("lsp", help="serve an editor over LSP on stdio")
    lsp.add_argument("--max-parallel", type=_count, default=None,
                     help="child executions at once (default: CPU count)")
    # vscode-languageclient (TransportKind.stdio) and other clients append it by convention.
    lsp.add_argument("--stdio", action="store_true",
                     help="serve on stdin/stdout (the default and only transport)")
    mcp = commands.add_parser("mcp", help="serve an MCP client (an agent) on stdio")
    mcp.add_argument("--workspace", type=_folder, default=".", metavar="DIR",
                     help="workspace folder")
    mcp.add_argument("--max-parallel", type=_count, default=None)
    run = commands.add_parser("run", help="run actions across the workspace's projects")
    run.add_argument("words", nargs="+", metavar="ACTION [PATH ...]",
                     help="actions to run, then files or directories to run them on (the "
                          "projects that hold them; default: every project)")
    run.add_argument("--project", action="append", default=None, metavar="PATH",
                     help="only this project (repeatable; default: all)")
    run.add_argument("--workspace", default=None, metavar="DIR", help=WORKSPACE_HELP)
    run.add_argument("--sequential", action="store_true", help="one child after another")
    run.add_argument("--stop-on-failure", action="store_true")
    run.add_argument("--timeout", type=_seconds, default=None,
                     help="seconds per child execution")
    run.add_argument("--max-parallel", type=_count, default=None)
    run.add_argument("--json", action="store_true", help="print results as JSON")
    run.add_argument("--output-format", choices=FORMATS, default="text",
                     help="how findings are listed: text (path:line:col: CODE message), "
                          "github (GitHub Actions annotations), json-lines (one JSON object "
                          "per finding) or sarif (SARIF 2.1.0, for GitHub code scanning)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print the findings and errors only: no progress, table or counts")
    run.add_argument("--statistics", action="store_true",
                     help="count the findings per code instead of listing them (text format)")
    run.add_argument("--fail-on", choices=LEVELS, default="warning",
                     help="the least severe finding that fails the run (default: warning; "
                          "information and hint findings are listed but do not fail it)")
    run.add_argument("--exit-zero", action="store_true",
                     help="exit 0 even when findings were reported (failures still exit 1, "
                          "config errors 2)")
    run.add_argument("--no-cache", action="store_true",
                     help="run every child: reuse no cached result (the fresh results still "
                          "refresh the cache)")
    run.add_argument("--changed-since", metavar="REF", default=None,
                     help="only projects with files changed since the git ref REF (from its "
                          "merge base with HEAD, uncommitted and untracked files included), "
                          "and the projects that declare depends_on them")
    run.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                     help="only part I of N of the selected projects, balanced by their "
                          "recorded durations (one CI matrix job per part)")
    run.add_argument("--no-daemon", action="store_true",
                     help="run in this process even when a daemon is running")
    listing = commands.add_parser("list", help="list projects and their actions")
    listing.add_argument("--workspace", default=None, metavar="DIR", help=WORKSPACE_HELP)
    listing.add_argument("--json", action="store_true")
    for name, text in (("trust", "allow background work (warm-up, diagnostics) in DIR as it "
                                 "is now; any later edit to its config or code revokes it"),
                       ("untrust", "forget that DIR was trusted")):
        command = commands.add_parser(name, help=text)
        command.add_argument("dir", metavar="DIR", help="workspace folder")
    daemon = commands.add_parser(
        "daemon", help="a background process that answers `run` from this environment at once "
                       "(no interpreter start, imports or discovery per run)")
    daemon.add_argument("action", choices=("start", "stop", "restart", "status"))
    daemon.add_argument("--idle-timeout", type=_seconds, default=IDLE_TIMEOUT, metavar="SECONDS",
                        help=f"stop after this long without a run (default: {IDLE_TIMEOUT:g})")
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line; `run` takes its paths before, between or after its options, as ruff
    does (`run lint -q src/`): argparse alone would refuse words after an option."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        if args.command != "run" or any(w.startswith("-") and w != "-" for w in rest):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        args.words += rest
    return args
