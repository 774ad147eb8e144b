"""Run the FineCode WM benchmark suite: `python benchmarks/run.py [--quick] [--only NAME ...]`.

Prints a table and writes `benchmarks/results.json` and `benchmarks/results.md`. With `--only`
the named benchmarks' figures replace theirs in existing results; the others are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(HERE.parent))

BENCHMARKS = ["cold_start", "advance", "full_path", "latency", "ingest", "scale", "memory",
              "cancel", "lint_workload", "delegation", "mcp_call", "diagnostics", "report_latency",
              "trust_recheck", "per_test_progress", "result_cache"]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _status(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "MISSED")


def _rows(figures: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for f in figures:
        s = f["stats"]
        rows.append([f["bench"], f["name"], f"{_fmt(s['median'])} {f['unit']}",
                     _fmt(s["min"]), _fmt(s["max"]), str(s["n"]), f["goal"], _status(f["ok"])])
    return rows


HEADER = ["bench", "figure", "median", "min", "max", "N", "goal", "status"]


def table(figures: list[dict[str, Any]]) -> str:
    rows = [HEADER, *_rows(figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "## FineCode WM benchmarks",
        "",
        f"Machine: {m['cpu']} · {m['cpus']} CPUs · Python {m['python']} "
        f"({m['implementation']}) · {m['platform']} · {m['date']}",
        "",
        f"Mode: {results['mode']}; each figure is the median of N runs (min/max alongside). "
        "Ratios are per-pair medians of interleaved runs in the same process run.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
            for r in _rows(results["figures"])]
    notes = [(f["bench"], f["name"], f["note"]) for f in results["figures"] if f["note"]]
    if notes:
        out += ["", "Notes:", ""]
        out += [f"- **{b} / {n}**: {t}" for b, n, t in notes]
    return "\n".join(out) + "\n"


async def _run(names: list[str], quick: bool) -> tuple[list[dict[str, Any]], dict[str, float]]:
    figures: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}: {module.TITLE}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = await module.run(quick)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            print(f"   {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            seconds[name] = time.perf_counter() - start
            continue
        seconds[name] = time.perf_counter() - start
        print(f"   {seconds[name]:.1f} s", file=sys.stderr, flush=True)
        figures += [f.to_json() for f in result]
    return figures, seconds


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import machine

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller counts")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these (repeatable or comma-separated): "
                             f"{', '.join(BENCHMARKS)}")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    names = [n for item in args.only for n in item.split(",") if n] or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = [n for n in BENCHMARKS if n in names]

    start = time.perf_counter()
    figures, seconds = asyncio.run(_run(names, args.quick))
    total = time.perf_counter() - start
    print(table(figures))
    print(f"\n{len(figures)} figures in {total:.0f} s", file=sys.stderr)

    if args.no_write:
        return 0
    path = HERE / "results.json"
    results: dict[str, Any] = {"figures": [], "seconds": {}}
    if args.only and path.exists():
        results = json.loads(path.read_text())
    kept = [f for f in results["figures"] if f["bench"] not in names]
    order = {n: i for i, n in enumerate(BENCHMARKS)}
    results["figures"] = sorted(kept + figures, key=lambda f: order.get(f["bench"], 99))
    results["seconds"] = {**results.get("seconds", {}), **{k: round(v, 1)
                                                           for k, v in seconds.items()}}
    results["machine"] = machine()
    results["mode"] = "quick" if args.quick else "default"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (HERE / "results.md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
