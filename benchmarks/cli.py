"""`python -m benchmarks [--quick] [--models a,b] [--engines ...] [--out DIR]` (see benchmarks/README.md)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import models
from .engines import ENGINES
from .report import write_reports
from .runner import SuiteConfig, run_suite


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--models` and `--engines` are comma-separated names."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help=f"few rounds, models {','.join(models.QUICK_MODELS)} unless --models is given")
    ap.add_argument("--models", type=lambda t: _names(t, list(models.MODELS), "model"),
                    help=f"comma-separated, from: {','.join(models.MODELS)}")
    ap.add_argument("--engines", type=lambda t: _names(t, list(ENGINES), "engine"), default=list(ENGINES),
                    help=f"comma-separated, from: {','.join(ENGINES)} (default: all; unavailable ones are noted)")
    ap.add_argument("--out", type=Path, default=Path("bench_out"), help="output directory (default: bench_out)")
    ap.add_argument("--threads", type=int, default=cpus, help=f"threads for every engine (default: {cpus}, all)")
    ap.add_argument("--rounds", type=int, help="repetition rounds (default: 10, quick: 3)")
    ap.add_argument("--round-time", type=float, help="seconds of calls per engine and batch per round")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, write the reports, print the Markdown."""
    args = parse_args(argv)
    names = args.models or (list(models.QUICK_MODELS) if args.quick else list(models.MODELS))
    cfg = SuiteConfig.preset(args.out.resolve(), names, args.engines, args.quick, args.threads)
    if args.rounds:
        cfg.rounds = args.rounds
    if args.round_time:
        cfg.round_s = args.round_time
    results = run_suite(cfg)
    print(write_reports(results, cfg.out))
    print(f"\nwritten: {cfg.out / 'results.md'}, {cfg.out / 'results.json'}, {cfg.out / 'ratios.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
