"""Waiting between attempts: capped exponential backoff with jitter, and stop-aware sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import random

_BACKOFF = (0.2, 30.0)


class Backoff:
    """Exponential, capped, jittered waits between failed attempts."""

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
