"""Drive follow_step() at the head until stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from indexer import metrics
from indexer.backfill import backfill
from indexer.errors import Retryable
from indexer.health import Health
from indexer.pacing import Backoff, wait_or_stop
from indexer.step import Outcome, Pipeline, StepResult, follow_step

log = structlog.get_logger("follow")

CATCH_UP_MIN_BLOCKS = 1_000
STOP_GRACE_SECONDS = 5.0
T = TypeVar("T")


async def catch_up(p: Pipeline, *, concurrency: int, health: Health) -> bool:
    """Far behind the head, index in large batches fetched ahead concurrently (the
    backfill driver, which advances the checkpoint because it starts right after it).
    Stops short of the reorg window, where the follower's per-block checks take over.
    Returns whether it had anything to do."""
    checkpoint = await p.store.checkpoint()
    head = await p.source.head()
    end = head - max(p.confirmations, p.reorg_window)
    if checkpoint is None or end - checkpoint.number < CATCH_UP_MIN_BLOCKS:
        return False
    start = checkpoint.number + 1
    log.info("catch_up", from_block=start, to_block=end, head=head)
    await backfill(
        p,
        start,
        end,
        head=head,
        concurrency=concurrency,
        on_progress=lambda done: health.progressed(start - 1 + done.done_blocks, head=head),
    )
    return True


async def follow(
    p: Pipeline,
    *,
    poll_interval: float,
    stop: asyncio.Event,
    health: Health,
    concurrency: int = 3,
) -> None:
    """Index new blocks as they arrive; Retryable errors back off and run the step again.

    Fatal errors propagate. On stop, the step in flight commits or rolls back first
    (it is cancelled if it takes longer than STOP_GRACE_SECONDS)."""
    backoff = Backoff()
    maybe_far_behind = True  # at start, and after errors (the node may have run ahead)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if maybe_far_behind:
                caught_up = catch_up(p, concurrency=concurrency, health=health)
                if await _unless_stopped(caught_up, stop) is None:
                    break
                maybe_far_behind = False
            result = await _unless_stopped(follow_step(p), stop)
        except Retryable as e:
            maybe_far_behind = True
            health.failed()
            metrics.STEP_RETRIES.labels(type(e).__name__).inc()
            log.warning("step_retry", error=str(e), error_type=type(e).__name__)
            await wait_or_stop(stop, backoff.next())
            continue
        if result is None:
            break
        backoff.reset()
        metrics.BATCH_DURATION.observe(time.perf_counter() - started)
        await health.stepped(result)
        if result.outcome is Outcome.PROGRESSED:
            _log_step(result, time.perf_counter() - started)
            metrics.BATCHES.labels("follow").inc()
            if result.to_block < result.head - p.confirmations:
                maybe_far_behind = result.head - result.to_block > CATCH_UP_MIN_BLOCKS
                continue
        if result.outcome in (Outcome.IDLE, Outcome.WAITING, Outcome.PROGRESSED):
            await wait_or_stop(stop, poll_interval)


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Run `work`; on stop, let it finish for a grace period, then cancel it (its
    transaction rolls back). None when it was cancelled."""
    step = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not step.done():
            await asyncio.wait({step}, timeout=STOP_GRACE_SECONDS)
        if not step.done():
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
            return None
        return step.result()
    finally:
        stopping.cancel()


def _log_step(result: StepResult, elapsed: float) -> None:
    log.info(
        "step",
        from_block=result.from_block,
        to_block=result.to_block,
        head=result.head,
        n_logs=result.n_logs,
        n_new=sum(result.new_rows.values()),
        elapsed_ms=round(elapsed * 1000, 1),
    )
