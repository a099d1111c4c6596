"""`python -m bench [name ...]`: run the named benchmarks, or all of them.

Figures go to stdout as JSON lines and to `bench/results/<name>.json`; progress to stderr.
The exit status is non-zero when any benchmark failed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from bench.harness import REGISTRY, run_benchmarks

DEFAULT_PHASE_SECONDS = 10.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run benchmarks; print one JSON figure per line.",
        epilog="benchmarks: " + "; ".join(f"{b.name}: {b.goal}" for b in REGISTRY.values()))
    parser.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (default: all)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_PHASE_SECONDS,
                        help="length of each timed load phase (default: %(default)s)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    args.names = args.names or list(REGISTRY)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return 1 if asyncio.run(run_benchmarks(args.names, seconds=args.seconds)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
