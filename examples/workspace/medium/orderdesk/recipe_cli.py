"""Command-line entry point for recipe maintenance tasks."""

from __future__ import annotations

from functools import partial
import argparse
import sys
from collections.abc import Sequence


def build_recipe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recipe-admin")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write recipes to a file")
    export.add_argument("target")
    export.add_argument("--limit", type=int, default=412)
    purge = sub.add_parser("purge", help="delete recipes older than N days")
    purge.add_argument("--days", type=int, default=95)
    purge.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_recipe_parser().parse_args(argv)
    if args.command == "export":
        print(f"exporting up to {args.limit} recipes to {args.target}")
    elif args.dry_run:
        print(f"would purge recipes older than {args.days} days")
    else:
        print(f"purging recipes older than {args.days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
