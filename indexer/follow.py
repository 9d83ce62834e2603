"""Drive follow_step() at the head until stopped; far behind, hand over to a catch-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from indexer import metrics
from indexer.errors import Retryable
from indexer.health import Health
from indexer.pacing import Backoff, wait_or_stop
from indexer.step import Outcome, Pipeline, StepResult, follow_step

log = structlog.get_logger("follow")

CATCH_UP_MIN_BLOCKS = 1_000
STOP_GRACE_SECONDS = 5.0
T = TypeVar("T")

# Indexes [from_block, to_block] in large batches fetched ahead (the backfill driver,
# which moves the checkpoint because the range starts right after it); `head` as read.
CatchUp = Callable[[int, int, int], Awaitable[object]]


async def follow(
    p: Pipeline,
    *,
    poll_interval: float,
    stop: asyncio.Event,
    health: Health,
    catch_up: CatchUp,
) -> None:
    """Index new blocks as they arrive; a Retryable error backs off and runs the step
    again. Far from the head (at start and after errors), `catch_up` runs first, up to
    the reorg window, where the per-block checks of follow_step take over.

    Fatal errors propagate. On stop, the work in flight commits or rolls back first (it
    is cancelled if it takes longer than STOP_GRACE_SECONDS)."""
    backoff = Backoff()
    maybe_far_behind = True
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if maybe_far_behind:
                behind = await _range_to_catch_up(p)
                if behind is not None:
                    log.info("catch_up", from_block=behind[0], to_block=behind[1], head=behind[2])
                    if await _unless_stopped(catch_up(*behind), stop, p) is None:
                        break
                maybe_far_behind = False
            stepped = await _unless_stopped(follow_step(p), stop, p)
        except Retryable as e:
            maybe_far_behind = True
            health.failed(e)
            metrics.STEP_RETRIES.labels(type(e).__name__).inc()
            log.warning("step_retry", error=str(e), error_type=type(e).__name__)
            await wait_or_stop(stop, backoff.next(e))
            continue
        if stepped is None:
            break
        result = stepped.result()
        if backoff.failures:
            log.info("recovered", after_failed_steps=backoff.failures)
        backoff.reset()
        metrics.BATCH_DURATION.observe(time.perf_counter() - started)
        health.stepped(result)
        if result.outcome is Outcome.PROGRESSED:
            _log_step(result, time.perf_counter() - started)
            metrics.BATCHES.labels("follow").inc()
            if result.to_block < result.head - p.confirmations:
                maybe_far_behind = result.head - result.to_block > CATCH_UP_MIN_BLOCKS
                continue
        if result.outcome is not Outcome.REORG:
            await wait_or_stop(stop, poll_interval)


async def _range_to_catch_up(p: Pipeline) -> tuple[int, int, int] | None:
    """(from_block, to_block, head) when the checkpoint is far below the reorg window."""
    checkpoint = await p.store.checkpoint()
    head = await p.source.head()
    end = head - max(p.confirmations, p.reorg_window)
    if checkpoint is None or end - checkpoint.number < CATCH_UP_MIN_BLOCKS:
        return None
    return checkpoint.number + 1, end, head


async def _unless_stopped(
    work: Awaitable[T], stop: asyncio.Event, p: Pipeline
) -> asyncio.Future[T] | None:
    """Run `work`; on stop, cancel it at once unless it is writing (a fetch, or a wait
    for a node that does not answer, loses nothing), else let the transaction finish
    for a grace period first (it rolls back if cancelled). The finished work, or None
    when it was cancelled."""
    step = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not step.done() and p.writing:
            await asyncio.wait({step}, timeout=STOP_GRACE_SECONDS)
        if not step.done():
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
            return None
        step.result()  # raises what the work raised
        return step
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
