"""How fast one provider may be asked, learned from its refusals.

A hosted provider answers "too many requests" (HTTP 429, or a rate-limit message) above
a budget of calls per second it does not announce. Retrying into it wastes the budget
and the time: every refused call costs a round trip and a backoff. Instead each URL has
an AdaptiveRate: unlimited until the first refusal, then a token bucket whose rate is set
just under what was being sent when the provider refused (multiplicative decrease), and
grows back slowly while answers come without refusal (additive increase), TCP's
congestion control applied to a request budget. Calls wait for their share before they are
sent, so after the first refusals the rate settles under the limit instead of oscillating
around it. A configured ceiling (AUDIFI_RPC_CALLS_PER_SECOND, the plan's known limit) is
never exceeded, refusals or not. Units are JSON-RPC calls: providers count each call of a
batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

DECREASE = 0.7  # after a refusal: this share of the rate that was refused
INCREASE_PER_S = 0.03  # per second without a refusal: this share more,
MIN_INCREASE_PER_S = 0.5  # and at least this many calls per second more
MIN_RATE = 1.0  # calls per second, however many refusals
_WINDOW_S = 1.0  # the sending rate is measured over this last stretch
_BURST_S = 0.25  # the bucket holds this many seconds of calls
_EPSILON = 1e-6  # tokens: rounding must not leave a request waiting for nothing
_MIN_WAIT_S = 0.001


class AdaptiveRate:
    """One URL's call budget: `acquire` before sending, `refused` when it says too many."""

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ceiling = ceiling
        self.rate: float | None = ceiling  # calls/s allowed now; None: no limit known
        self._clock, self._sleep = clock, sleep
        self._tokens = 0.0 if ceiling is None else ceiling * _BURST_S
        self._filled_at = clock()
        self._sent: deque[tuple[float, int]] = deque()  # (when, calls) in the window
        self._decreased_at = -1.0e9
        self._grown_at = clock()
        self._largest_answered = 0  # calls in the largest request answered so far
        self._lock = asyncio.Lock()

    @property
    def limited(self) -> bool:
        return self.rate is not None

    @property
    def calls_per_request(self) -> int | None:
        """The most calls one request may hold under a limit: a second's worth, or as many
        as a request the provider did answer (however well paced, a batch larger than the
        provider's budget is refused every time, while splitting one it takes only adds
        requests); None while nothing limits."""
        if self.rate is None:
            return None
        return max(1, int(self.rate), self._largest_answered)

    def answered(self, calls: int) -> None:
        """The provider answered a request of `calls` calls."""
        self._largest_answered = max(self._largest_answered, calls)

    async def acquire(self, calls: int) -> None:
        """Wait until `calls` more calls fit the rate (at once while nothing limits)."""
        async with self._lock:  # first come, first served: waits do not reorder requests
            while True:
                now = self._clock()
                self._grow(now)
                if self.rate is None:
                    break
                self._refill(now)
                if self._tokens >= -_EPSILON:
                    self._tokens -= calls  # a batch larger than the bucket goes into debt
                    break
                await self._sleep(max(_MIN_WAIT_S, -self._tokens / self.rate))
            self._record(now, calls)

    def refused(self, calls: int = 1) -> float:
        """The provider said "too many" to a request of `calls` calls: slow down to under
        what was sent. Refusals of requests sent before the last decrease took effect do
        not decrease it again. Returns the new rate."""
        now = self._clock()
        if self.rate is not None and now - self._decreased_at < _WINDOW_S:
            return self.rate
        # What was being sent: at least the refused request itself (after a long wait the
        # window may hold nothing else, and a rate of zero would stall every request).
        sent = max(self._sending_rate(now), float(calls))
        current = self.rate if self.rate is not None else sent
        new = max(MIN_RATE, min(current, sent) * DECREASE)
        if self.ceiling is not None:
            new = min(new, self.ceiling)
        self._refill(now)
        self.rate = new
        self._tokens = min(self._tokens, 0.0)  # what was in the bucket was over the limit
        self._decreased_at = self._grown_at = now
        return new

    def _grow(self, now: float) -> None:
        if self.rate is None:
            return
        elapsed = now - self._grown_at
        if elapsed <= 0.0:
            return
        self.rate += max(self.rate * INCREASE_PER_S, MIN_INCREASE_PER_S) * elapsed
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._grown_at = now

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            burst = max(1.0, self.rate * _BURST_S)
            self._tokens = min(burst, self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now

    def _record(self, now: float, calls: int) -> None:
        self._sent.append((now, calls))
        self._forget_before(now - _WINDOW_S)

    def _sending_rate(self, now: float) -> float:
        """Calls per second sent over the last window."""
        self._forget_before(now - _WINDOW_S)
        return sum(calls for _, calls in self._sent) / _WINDOW_S

    def _forget_before(self, moment: float) -> None:
        while self._sent and self._sent[0][0] < moment:
            self._sent.popleft()
