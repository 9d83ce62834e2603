"""AdaptiveRate (indexer/ratelimit.py) on a simulated clock: a provider's hidden limit,
refusals above it, and the rate the indexer settles at."""

from __future__ import annotations

import pytest

from indexer import ratelimit
from indexer.ratelimit import AdaptiveRate


class Clock:
    """Simulated time: sleeping moves it, nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class Provider:
    """A plan of `limit` calls per second: a token bucket holding one second of calls."""

    def __init__(self, clock: Clock, limit: float) -> None:
        self.clock, self.limit = clock, limit
        self.tokens, self.at = limit, 0.0
        self.refused: list[float] = []

    def serve(self, calls: int) -> bool:
        now = self.clock()
        self.tokens = min(self.limit, self.tokens + (now - self.at) * self.limit)
        self.at = now
        if self.tokens < calls:
            self.refused.append(now)
            return False
        self.tokens -= calls
        return True


async def _drive(rate: AdaptiveRate, provider: Provider, clock: Clock, seconds: float) -> int:
    """A client that always has work: sends one call after another (each request takes
    5 ms), as paced by `rate`; returns the calls served."""
    served = 0
    while clock() < seconds:
        await rate.acquire(1)
        clock.now += 0.005
        if provider.serve(1):
            served += 1
        else:
            rate.refused()
    return served


async def test_unlimited_until_the_first_refusal() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        await rate.acquire(5)
    assert clock() == 0.0 and not rate.limited


@pytest.mark.parametrize("limit", [10.0, 50.0, 150.0])
async def test_after_the_first_refusals_the_rate_settles_under_the_limit(limit: float) -> None:
    clock = Clock()
    provider = Provider(clock, limit)
    rate = AdaptiveRate(clock=clock, sleep=clock.sleep)
    served = await _drive(rate, provider, clock, 120.0)
    assert provider.refused, "the client must have hit the limit"
    first = provider.refused[0]
    late = [t for t in provider.refused if t > first + 10.0]
    # After the first seconds, refusals are rare: the rate stays under the limit...
    assert len(late) <= 0.02 * served
    # ... but close to it: most of the plan's budget is used.
    assert served >= 0.75 * limit * 120.0
    # The rate it is paced at saws between just under the limit and just over it.
    assert rate.rate is not None and 0.5 * limit <= rate.rate <= 1.5 * limit


async def test_a_burst_of_refusals_decreases_once() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock=clock, sleep=clock.sleep)
    for _ in range(100):
        await rate.acquire(1)  # 100 calls within the last second
    first = rate.refused()
    assert first == pytest.approx(100 * ratelimit.DECREASE)
    for _ in range(10):  # requests that were in flight, refused too
        assert rate.refused() == first


async def test_a_configured_ceiling_is_never_exceeded() -> None:
    clock = Clock()
    rate = AdaptiveRate(25.0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        await rate.acquire(1)
    # 1,000 calls at 25/s, less the bucket's quarter second and the last one's debt.
    assert clock() >= (1000 - 25 * 0.25 - 1) / 25.0 - 1e-6
    clock.now += 3600.0
    await rate.acquire(1)
    assert rate.rate == 25.0


def test_a_request_holds_a_seconds_worth_of_calls_or_what_was_answered() -> None:
    clock = Clock()
    rate = AdaptiveRate(clock=clock, sleep=clock.sleep)
    assert rate.calls_per_request is None, "nothing limits a request before a refusal"
    rate.answered(3)
    rate.refused(60)  # a request of 60 calls alone is over the provider's budget
    assert rate.calls_per_request == int(60 * ratelimit.DECREASE)
    for _ in range(4):
        clock.now += 1.0
        rate.refused(rate.calls_per_request or 0)
    assert rate.calls_per_request == int(rate.rate or 0) < 15
    rate.answered(40)  # the provider took one this large: splitting it only adds requests
    assert rate.calls_per_request == 40
