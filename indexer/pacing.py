"""Waiting between attempts: one backoff rule (exponential, capped, optionally jittered)
for every retry and rest in the indexer, and sleeps that end when the process stops."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

from indexer.errors import NotReady


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """base * 2^(attempt-1) seconds, capped; with jitter drawn from the upper half, so
    that many waiters spread out."""

    base: float
    cap: float
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        delay = min(self.cap, self.base * 2 ** (max(1, attempt) - 1))
        return random.uniform(delay / 2, delay) if self.jitter else delay


# A driver running a failed step again: capped low, so that it notices a recovered node
# or database within seconds (a retry costs one request).
STEP_BACKOFF = BackoffPolicy(base=0.2, cap=5.0)
# The node lacks a block it has told us of (a lagging replica behind a load balancer):
# it will have it in moments, so the wait stays short.
WAIT_FOR_BLOCK = BackoffPolicy(base=0.1, cap=2.0)


@dataclass(slots=True)
class Backoff:
    """Consecutive failures of one loop, and how long to wait after the latest."""

    policy: BackoffPolicy = field(default=STEP_BACKOFF)
    failures: int = 0

    def next(self, error: BaseException | None = None) -> float:
        """The wait after one more failure; short when it was a block not there yet."""
        self.failures += 1
        policy = WAIT_FOR_BLOCK if isinstance(error, NotReady) else self.policy
        return policy.delay(self.failures)

    def reset(self) -> None:
        self.failures = 0


async def wait_or_stop(stop: asyncio.Event | None, seconds: float) -> None:
    """Sleep that ends early when `stop` is set (a plain, cancellable sleep without one)."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
