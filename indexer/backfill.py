"""Index a fixed range: a bounded prefetch of fetched ranges, committed in order.

Memory stays flat: at most `concurrency` ranges are fetched and decoded ahead of the
writer, while the database writes the one before them. Contracts are discovered
first, from the factory's logs up to the range's end, so a range fetched out of
order still knows every child deployed before it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing

import structlog

from indexer import metrics
from indexer.errors import Retryable
from indexer.pacing import Backoff, wait_or_stop
from indexer.progress import Progress
from indexer.registry import Registry
from indexer.step import (
    Discovery,
    Pipeline,
    Prepared,
    commit,
    fetch_prepared,
)

log = structlog.get_logger("backfill")


async def backfill(
    p: Pipeline,
    start: int,
    end: int,
    *,
    head: int,
    concurrency: int,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Index exactly [start, end] (less, only if `stop` is set). Idempotent; safe beside a
    running follower. A retryable error backs off and resumes at the first block not yet
    committed; a fatal one propagates."""
    return await backfill_ranges(
        p, [(start, end)], head=head, concurrency=concurrency, stop=stop, on_progress=on_progress
    )


async def backfill_ranges(
    p: Pipeline,
    ranges: Sequence[tuple[int, int]],
    *,
    head: int,
    concurrency: int,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """`backfill` over disjoint ranges in ascending order (a shard's stripes), with one
    progress and one discovery across them."""
    began = time.perf_counter()
    total = sum(end - start + 1 for start, end in ranges)
    metrics.BACKFILL_TOTAL_BLOCKS.set(total)
    metrics.BACKFILL_TARGET_BLOCK.set(max((end for _, end in ranges), default=0))
    backoff = Backoff()
    discovery: Discovery | None = None
    done, events, logs = 0, 0, 0
    for start, end in ranges:
        next_block = start
        while next_block <= end and not (stop and stop.is_set()):
            try:
                if discovery is None:
                    discovery = Discovery.after(p, await p.store.position())
                registry = await discovery.run(p, until=end)
                registry.publish()
                async with aclosing(
                    _prefetched(p, registry, next_block, end, head, concurrency)
                ) as prefetched:
                    async for prepared in prefetched:
                        committed = await commit(
                            p, prepared, head=head, expected=None, durable=False
                        )
                        if backoff.failures:
                            log.info("recovered", after_failed_steps=backoff.failures)
                        backoff.reset()
                        done += prepared.to_block + 1 - next_block
                        next_block = prepared.to_block + 1
                        events += sum(committed.new_rows.values())
                        logs += prepared.n_logs
                        metrics.BACKFILL_DONE_BLOCKS.set(done)
                        metrics.BATCHES.labels("backfill").inc()
                        if on_progress:
                            elapsed = time.perf_counter() - began
                            on_progress(Progress(done, total, logs, events, elapsed))
                        if stop and stop.is_set():
                            break
            except Retryable as e:
                metrics.STEP_RETRIES.labels(type(e).__name__).inc()
                log.warning("backfill_retry", from_block=next_block, error=str(e))
                await wait_or_stop(stop, backoff.next(e))
    return Progress(done, total, logs, events, time.perf_counter() - began)


async def _prefetched(
    p: Pipeline, registry: Registry, start: int, end: int, head: int, concurrency: int
) -> AsyncGenerator[Prepared, None]:
    """[start, end] in planned ranges, up to `concurrency` fetched ahead, yielded in chain
    order. Leaving early cancels what is still being fetched."""
    pending: deque[asyncio.Task[list[Prepared]]] = deque()
    planned = start

    def refill() -> None:
        nonlocal planned
        while planned <= end and len(pending) < concurrency:
            last = p.planner.end_for(planned, end)
            pending.append(
                asyncio.create_task(fetch_prepared(p, registry, planned, last, head=head))
            )
            planned = last + 1

    try:
        refill()
        while pending:
            fetching = pending.popleft()
            refill()  # keep `concurrency` in flight while this one is awaited and written
            for prepared in await fetching:
                yield prepared
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
