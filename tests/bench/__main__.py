"""`python -m tests.bench [--shapes dense,production] [--sizes 100k,1m] [--runs N]
[--report PATH] [--profile]`: every size of every shape (tests/bench/shapes.py)."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path
from types import FrameType

from indexer import logs
from tests.bench.chaincache import CACHE_DIR
from tests.bench.run import INTERRUPTED, STEPS, Options, main
from tests.bench.shapes import DEFAULT_SHAPES, SHAPES

DEFAULT_RUNS = {100_000: 3, 1_000_000: 3}  # any other size: 1
_SIZE = re.compile(r"^(\d+)([km]?)$")


def parse_size(text: str) -> int:
    """'100k' -> 100_000, '1m' -> 1_000_000, '2500' -> 2_500."""
    match = _SIZE.match(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100k, 1m)")
    return int(match[1]) * {"": 1, "k": 1_000, "m": 1_000_000}[match[2]]


def parse_runs(text: str | None, sizes: dict[str, int]) -> dict[str, int]:
    """None: the defaults; 'N': N for every size; '100k=3,1m=1': per size."""
    runs = {label: DEFAULT_RUNS.get(n, 1) for label, n in sizes.items()}
    if text is None:
        return runs
    if text.isdigit():
        return dict.fromkeys(sizes, int(text))
    for part in text.split(","):
        label, _, count = part.partition("=")
        if label.strip().lower() not in runs or not count.isdigit():
            raise SystemExit(f"--runs: {part!r} is not SIZE=N for one of {list(sizes)}")
        runs[label.strip().lower()] = int(count)
    return runs


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--sizes", default="100k,1m", help="events per chain (default 100k,1m)")
    parser.add_argument("--runs", help="runs per size: N, or 100k=3,1m=1 (default: 3)")
    parser.add_argument("--report", type=Path, default=CACHE_DIR / "report.json")
    parser.add_argument("--profile", action="store_true", help="one more backfill under py-spy")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shapes",
        default=",".join(DEFAULT_SHAPES),
        help=f"chain shapes, of {sorted(SHAPES)} (default {','.join(DEFAULT_SHAPES)})",
    )
    parser.add_argument("--follow-blocks", type=int, default=40)
    parser.add_argument("--skip", default="", help=f"comma-separated steps of {STEPS}")
    parser.add_argument(
        "--indexer-env",
        action="append",
        default=[],
        metavar="AUDIFI_X=VALUE",
        help="a setting for the indexer processes, to compare configurations (repeatable)",
    )
    args = parser.parse_args(argv)
    sizes = {label.strip().lower(): parse_size(label) for label in args.sizes.split(",")}
    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    if skip - set(STEPS):
        parser.error(f"--skip: unknown steps {sorted(skip - set(STEPS))}")
    shapes = tuple(s.strip() for s in args.shapes.split(",") if s.strip())
    if not shapes or set(shapes) - set(SHAPES):
        parser.error(f"--shapes: of {sorted(SHAPES)}")
    extra = dict(item.partition("=")[::2] for item in args.indexer_env)
    if any(not key.startswith("AUDIFI_") for key in extra):
        parser.error("--indexer-env takes AUDIFI_NAME=VALUE")
    return Options(
        sizes=sizes,
        runs=parse_runs(args.runs, sizes),
        seed=args.seed,
        shapes=shapes,
        follow_blocks=args.follow_blocks,
        report_path=args.report,
        profile=args.profile,
        skip=skip,
        indexer_env=extra,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM unwind as KeyboardInterrupt, so every started process is stopped
    on the way out. Installed in place of Python's own, asyncio.run leaves it alone."""
    INTERRUPTED.set()
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    logs.configure(level="warning")  # the migrations' info lines are not the benchmark's
    options = parse_args(sys.argv[1:])
    try:
        main(options)
    except KeyboardInterrupt:
        print("\ninterrupted; started processes were stopped", file=sys.stderr)
        sys.exit(130)
