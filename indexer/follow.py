"""Drive follow_step() at the head until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import structlog

from indexer import metrics
from indexer.errors import Retryable
from indexer.health import Health
from indexer.step import Outcome, Pipeline, StepResult, follow_step

log = structlog.get_logger("follow")

_BACKOFF = (0.2, 30.0)
STOP_GRACE_SECONDS = 5.0


class Backoff:
    """Exponential, capped, jittered waits between failed steps."""

    def __init__(self) -> None:
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        low, high = _BACKOFF
        delay = min(high, low * 2 ** (self.failures - 1))
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep that ends early when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def follow(p: Pipeline, *, poll_interval: float, stop: asyncio.Event, health: Health) -> None:
    """Index new blocks as they arrive; Retryable errors back off and run the step again.

    Fatal errors propagate. On stop, the step in flight commits or rolls back first
    (it is cancelled if it takes longer than STOP_GRACE_SECONDS)."""
    backoff = Backoff()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            result = await _step_unless_stopped(p, stop)
        except Retryable as e:
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
                continue
        if result.outcome in (Outcome.IDLE, Outcome.WAITING, Outcome.PROGRESSED):
            await wait_or_stop(stop, poll_interval)


async def _step_unless_stopped(p: Pipeline, stop: asyncio.Event) -> StepResult | None:
    step = asyncio.ensure_future(follow_step(p))
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
