"""Waiting in tests: poll a condition until it holds, failing at a deadline with what
was awaited and the last value seen. No test sleeps to synchronise, and no wait gives
up quietly: at its deadline it raises AssertionError.

A check may raise to fail at once (say, when the process it waits on has exited).
`what` is a description, or a function that gives one at the deadline (with a log
tail, or the last error seen)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

What = str | Callable[[], str]


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: What, every: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what, value))
        time.sleep(every)


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float, what: What, every: float = 0.02
) -> T:
    """`wait_until` for async checks, without blocking the event loop."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(within, what, value))
        await asyncio.sleep(every)


def _timed_out(seconds: float, what: What, value: object) -> str:
    described = what if isinstance(what, str) else what()
    return f"timed out after {seconds}s waiting for {described} (last: {value!r})"
