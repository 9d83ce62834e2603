"""Index a fixed range: fetch and decode ahead concurrently, commit in order.

Memory stays flat: at most `concurrency` prepared ranges wait for the writer, and
they are decoded while the database writes the one before them.
Contracts are discovered first from the factory's logs up to the range's end,
so a range indexed out of order still knows every child deployed before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from indexer import metrics
from indexer.decode import decode
from indexer.errors import RangeTooLarge, Retryable
from indexer.pacing import Backoff
from indexer.registry import children_of
from indexer.step import Pipeline, Prepared, commit, fetch_discovering, prepare, split
from indexer.store.state import Mode

log = structlog.get_logger("backfill")


@dataclass(frozen=True, slots=True)
class Progress:
    done_blocks: int
    total_blocks: int
    events: int
    elapsed: float


async def discover_children(p: Pipeline, *, since: int, until: int) -> None:
    """Learn every contract the factory deployed in [since, until] (its logs only)."""
    start = since
    while start <= until:
        end = p.planner.end_for(start, until)
        try:
            fetched = await p.source.fetch(start, end, [p.registry.factory.address])
        except RangeTooLarge as e:
            p.planner.refused(e, start=start, end=end)
            continue
        events = [decode(g, p.registry.factory) for g in fetched.logs]
        p.registry.add(children_of(e for e in events if e is not None))
        start = end + 1


async def _fetch_chunks(p: Pipeline, start: int, end: int, head: int) -> list[Prepared]:
    """Fetch and decode [start, end] as one or more chunks, split where the node refuses
    and where a range holds more logs than one transaction should."""
    chunks: list[Prepared] = []
    backoff = Backoff()
    while start <= end:
        stop = min(end, p.planner.end_for(start, end))
        try:
            found = await fetch_discovering(
                p, start, stop, all_headers=stop > head - p.reorg_window
            )
        except RangeTooLarge as e:
            p.planner.refused(e, start=start, end=stop)
            metrics.GETLOGS_SPLITS.inc()
            continue
        except Retryable as e:
            metrics.STEP_RETRIES.labels(type(e).__name__).inc()
            log.warning("fetch_retry", from_block=start, to_block=stop, error=str(e))
            await asyncio.sleep(backoff.next())
            continue
        p.planner.succeeded(blocks=stop - start + 1, logs=len(found.fetched.logs))
        chunks.extend(
            prepare(part, p.store.chain_id) for part in split(found, p.planner.target_logs)
        )
        start = stop + 1
    return chunks


async def _planned(p: Pipeline, start: int, end: int) -> AsyncIterator[tuple[int, int]]:
    while start <= end:
        stop = p.planner.end_for(start, end)
        yield start, stop
        start = stop + 1


async def backfill(
    p: Pipeline,
    start: int,
    end: int,
    *,
    head: int,
    concurrency: int,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Index exactly [start, end]. Idempotent; safe beside a running follower."""
    began = time.perf_counter()
    metrics.BACKFILL_TOTAL_BLOCKS.set(end - start + 1)
    metrics.BACKFILL_TARGET_BLOCK.set(end)
    await discover_children(p, since=p.registry.factory.since_block, until=end)
    pending: asyncio.Queue[asyncio.Task[list[Prepared]] | None] = asyncio.Queue(concurrency)
    events = 0

    async def produce() -> None:
        async for a, b in _planned(p, start, end):
            await pending.put(asyncio.create_task(_fetch_chunks(p, a, b, head)))
        await pending.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (task := await pending.get()) is not None:
            for prepared in await task:
                events += await _commit_retrying(p, prepared, head)
                done = prepared.to_block - start + 1
                metrics.BACKFILL_DONE_BLOCKS.set(done)
                metrics.BATCHES.labels("backfill").inc()
                if on_progress:
                    on_progress(
                        Progress(done, end - start + 1, events, time.perf_counter() - began)
                    )
    finally:
        producer.cancel()
        while not pending.empty():
            leftover = pending.get_nowait()
            if leftover is not None:
                leftover.cancel()
    return Progress(end - start + 1, end - start + 1, events, time.perf_counter() - began)


async def _commit_retrying(p: Pipeline, prepared: Prepared, head: int) -> int:
    """Commit a prepared chunk; on a retryable failure fetch that range again and retry."""
    backoff = Backoff()
    while True:
        try:
            committed = await commit(p, prepared, mode=Mode.BACKFILL, head=head, based_on=None)
            return sum(committed.new_rows.values())
        except Retryable as e:
            metrics.STEP_RETRIES.labels(type(e).__name__).inc()
            log.warning("commit_retry", from_block=prepared.from_block, error=str(e))
            await asyncio.sleep(backoff.next())
            refetched = await _fetch_chunks(p, prepared.from_block, prepared.to_block, head)
            if len(refetched) == 1:
                prepared = refetched[0]
            else:
                return sum([await _commit_retrying(p, f, head) for f in refetched])
