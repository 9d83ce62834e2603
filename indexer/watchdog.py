"""The progress watchdog: the process is up and the node's head moves, but the
checkpoint does not (a step that hangs, or fails the same way forever).

It reads the head and the checkpoint on its own schedule, apart from the follower,
so that it sees a follower stuck inside a step. Progress is the checkpoint moving, or
indexing work done that cannot move it yet (a catch-up reading the factory's logs
before its first commit). Stalled once the checkpoint is behind the head and nothing
progressed for `stall_seconds`, or while the head moved `stall_blocks` past where it
was at the last progress: /readyz says so,
the stalled gauge is 1. Still stalled `exit_seconds` later, it raises Stalled, so
that the process exits non-zero and the orchestrator restarts it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from indexer import metrics
from indexer.chain import Checkpoint
from indexer.errors import Fatal, Retryable
from indexer.health import Health
from indexer.pacing import wait_or_stop
from indexer.step import Pipeline

log = structlog.get_logger("watchdog")


class Stalled(Fatal):
    """The checkpoint stopped moving while the chain went on."""


@dataclass(slots=True)
class Watchdog:
    stall_seconds: float
    stall_blocks: int
    exit_seconds: float
    interval: float = 1.0

    async def run(self, p: Pipeline, health: Health, stop: asyncio.Event) -> None:
        metrics.STALLED.set(0)
        last: Checkpoint | None = None
        work = p.progress
        moved_at = time.monotonic()
        head_then: int | None = None
        stalled_since: float | None = None
        try:
            while not stop.is_set():
                try:
                    checkpoint = await p.store.checkpoint()
                    head = await p.source.head()
                except Retryable:  # a dependency is down: readiness reports that already
                    await wait_or_stop(stop, self.interval)
                    continue
                now = time.monotonic()
                if checkpoint != last or p.progress != work or head_then is None:
                    last, work, moved_at, head_then = checkpoint, p.progress, now, head
                behind = checkpoint is not None and head - p.confirmations > checkpoint.number
                stuck_for = now - moved_at
                if behind and (
                    stuck_for >= self.stall_seconds or head - head_then >= self.stall_blocks
                ):
                    assert checkpoint is not None
                    reason = (
                        f"stalled: the checkpoint has stayed at block {checkpoint.number} for "
                        f"{stuck_for:.0f}s while the node's head moved from {head_then} to {head}"
                    )
                    if stalled_since is None:
                        stalled_since = now
                        log.error(
                            "stalled",
                            checkpoint=checkpoint.number,
                            head=head,
                            stuck_s=round(stuck_for),
                            exit_in_s=self.exit_seconds,
                        )
                    health.stalled = reason
                    metrics.STALLED.set(1)
                    if now - stalled_since >= self.exit_seconds:
                        raise Stalled(f"{reason}; exiting so that the process is restarted")
                elif stalled_since is not None:
                    log.info("unstalled", checkpoint=checkpoint.number if checkpoint else None)
                    stalled_since, health.stalled = None, None
                    metrics.STALLED.set(0)
                await wait_or_stop(stop, self.interval)
        finally:
            health.stalled = None
            metrics.STALLED.set(0)
