"""Waiting in tests: poll a condition until it holds, failing at a deadline with what
was awaited and the last value seen. No test sleeps to synchronise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(every)


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.02
) -> T:
    """`wait_until` for async checks, without blocking the event loop."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(every)
