"""The daemon's catch-up far below the head: the backfill driver over the blocks not yet
committed, in chunks. Blocks that other writers (the shards of a backfill) committed
meanwhile are not fetched again: the checkpoint is moved over them instead, below the
reorg window only, so a follower started beside a fanned-out backfill ends where the
shards did without doing their work a second time."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog

from indexer.backfill import backfill
from indexer.chain import Checkpoint
from indexer.errors import NotReady
from indexer.health import Health
from indexer.progress import Progress, ProgressLog
from indexer.step import Pipeline
from indexer.store.coverage import Span

log = structlog.get_logger("catch_up")

# Coverage is read again after this many blocks (or 25 fetch ranges, if more): how much
# of a running shard's work a follower may repeat before it notices.
CHUNK_BLOCKS = 10_000


async def catch_up(
    p: Pipeline,
    start: int,
    end: int,
    *,
    head: int,
    concurrency: int,
    stop: asyncio.Event,
    health: Health,
) -> None:
    """Index up to `end` (below the reorg window) from the checkpoint, which the caller
    read as `start - 1`."""
    progress_log = ProgressLog("catch_up_progress")
    checkpoint = await p.store.checkpoint()
    while checkpoint is not None and checkpoint.number < end and not stop.is_set():
        committed = await p.store.coverage()
        checkpoint = await _skip_committed(p, checkpoint, end, committed)
        first = checkpoint.number + 1
        if first > end:
            break
        last = _chunk_end(p, first, end, committed)

        def on_progress(done: Progress, first: int = first) -> None:
            health.progressed(first - 1 + done.done_blocks, head=head)
            progress_log(
                replace(
                    done, done_blocks=first - start + done.done_blocks, total_blocks=end - start + 1
                )
            )

        await backfill(
            p, first, last, head=head, concurrency=concurrency, stop=stop, on_progress=on_progress
        )
        moved = await p.store.checkpoint()
        if moved is None or moved.number <= checkpoint.number:
            return  # it did not link (a fork): follow_step's checks take over
        checkpoint = moved


def _chunk_end(p: Pipeline, first: int, end: int, committed: list[Span]) -> int:
    """The end of the next chunk: before the next committed range, at most a chunk long."""
    longest = max(CHUNK_BLOCKS, 25 * p.planner.span)
    later = [s.from_block for s in committed if s.from_block > first]
    return min([end, first + longest - 1, *(b - 1 for b in later)])


async def _skip_committed(
    p: Pipeline, checkpoint: Checkpoint, end: int, committed: list[Span]
) -> Checkpoint:
    """The checkpoint moved to the end of the committed range right above it (capped at
    `end`), when there is one; else as it was."""
    above = [s.to_block for s in committed if s.from_block <= checkpoint.number + 1 <= s.to_block]
    target = min(max(above, default=checkpoint.number), end)
    if target <= checkpoint.number:
        return checkpoint
    header = (await p.source.headers([target]))[target]
    if header is None:
        raise NotReady(f"the node has no block {target}, below its head")
    if await p.store.skip_committed(checkpoint, header, fence=p.fence):
        log.info("skipped_committed", from_block=checkpoint.number + 1, to_block=target)
        return Checkpoint(target, header.hash)
    return await p.store.checkpoint() or checkpoint
