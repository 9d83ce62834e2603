"""One backfill split over N processes or machines: `--shard I/N`, or `--shards N` with I
read from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod index). Pure.

The range is cut into N x STRIPES_PER_SHARD stripes of equal length, dealt round-robin:
shard I takes stripes I, I+N, I+2N, ... so every shard gets old and recent history
alike (a chain's activity is rarely spread evenly over its life, and a contiguous split
would leave the busiest stretch to one shard). Shards need no coordinator: derived
state is the same whatever order ranges commit in, and the chain's writer lock
serialises their commits with each other's and the follower's. A shard run again (a
Job retrying a failed index) leaves out what the index has already committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from indexer.errors import ConfigError

# Enough stripes to even out uneven activity, few enough that each is long enough for
# the fetch pipeline to fill (it drains at every stripe's end).
STRIPES_PER_SHARD = 8
INDEX_ENV = "JOB_COMPLETION_INDEX"
_SHARD = re.compile(r"^(\d+)/(\d+)$")

BlockRange = tuple[int, int]  # first and last block, inclusive


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0-based, like JOB_COMPLETION_INDEX
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"--shard {self.index}/{self.count}: the index must be 0 to {self.count - 1}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'I/N' as given to --shard."""
        match = _SHARD.match(text.strip())
        if match is None:
            raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4 (I counts from 0)")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def from_environment(cls, count: int, environ: Mapping[str, str]) -> Shard:
        """Shard I of `count`, I from JOB_COMPLETION_INDEX (set by an Indexed Job)."""
        value = environ.get(INDEX_ENV)
        if value is None or not value.isdigit():
            raise ConfigError(
                f"--shards {count}: {INDEX_ENV} is {'not set' if value is None else repr(value)}"
                "; outside an Indexed Job give --shard I/N"
            )
        return cls(int(value), count)


def stripes(start: int, end: int, shard: Shard) -> list[BlockRange]:
    """The shard's stripes of [start, end], ascending; every block of the range is in
    exactly one shard's stripes."""
    total = end - start + 1
    n_stripes = min(total, shard.count * STRIPES_PER_SHARD)
    bounds = [start + total * k // n_stripes for k in range(n_stripes + 1)]
    return [(bounds[k], bounds[k + 1] - 1) for k in range(shard.index, n_stripes, shard.count)]


def uncommitted(ranges: Iterable[BlockRange], committed: Iterable[BlockRange]) -> list[BlockRange]:
    """`ranges` without the blocks in `committed` (both ascending and disjoint)."""
    done = list(committed)
    left: list[BlockRange] = []
    for start, end in ranges:
        cursor = start
        for low, high in done:
            if high < cursor or low > end:
                continue
            if low > cursor:
                left.append((cursor, low - 1))
            cursor = max(cursor, high + 1)
        if cursor <= end:
            left.append((cursor, end))
    return left
