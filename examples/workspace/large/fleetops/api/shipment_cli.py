"""Command-line entry point for shipment maintenance tasks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_shipment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipment-admin")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write shipments to a file")
    export.add_argument("target")
    export.add_argument("--limit", type=int, default=383)
    purge = sub.add_parser("purge", help="delete shipments older than N days")
    purge.add_argument("--days", type=int, default=88)
    purge.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_shipment_parser().parse_args(argv)
    if args.command == "export":
        print(f"exporting up to {args.limit} shipments to {args.target}")
    elif args.dry_run:
        print(f"would purge shipments older than {args.days} days")
    else:
        print(f"purging shipments older than {args.days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
