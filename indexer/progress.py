"""Progress of long work (a backfill, a daemon's catch-up) for the people watching it:
blocks and logs done, rates, and an ETA, as one log line every few seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger("progress")

EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Progress:
    done_blocks: int
    total_blocks: int
    logs: int  # logs of tracked contracts processed: work done, new rows or not
    events: int  # raw rows newly written (0 when re-indexing what is stored)
    elapsed: float

    @property
    def share(self) -> float:
        return self.done_blocks / self.total_blocks if self.total_blocks else 1.0

    @property
    def blocks_per_s(self) -> float:
        return self.done_blocks / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds to go at the rate so far; None before there is a rate."""
        rate = self.blocks_per_s
        return (self.total_blocks - self.done_blocks) / rate if rate > 0 else None

    def fields(self) -> dict[str, object]:
        return {
            "done_blocks": self.done_blocks,
            "total_blocks": self.total_blocks,
            "percent": round(100 * self.share, 1),
            "blocks_per_s": round(self.blocks_per_s, 1),
            "logs": self.logs,
            "logs_per_s": round(self.logs / self.elapsed) if self.elapsed > 0 else 0,
            "new_rows": self.events,
            "eta_s": None if self.eta_s is None else round(self.eta_s),
        }


@dataclass(slots=True)
class ProgressLog:
    """Logs `event` with the progress at most every EVERY_SECONDS (and at the end)."""

    event: str
    last: float = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        done = progress.done_blocks >= progress.total_blocks
        if done or now - self.last >= EVERY_SECONDS:
            self.last = now
            log.info(self.event, **progress.fields())
