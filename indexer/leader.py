"""Leadership per chain: any number of `run` replicas, exactly one of which follows.

    standby  tries to take the lease every lease/3 seconds; ready, writes nothing
    leader   renews it every lease/3 seconds; every commit carries its fence (holder,
             epoch), checked inside the commit's transaction
    losing   a renewal that finds another epoch, or a commit refused by the fence, stops
             the follower at once; the replica stands by again

A leader that dies stops renewing: a standby takes over once the lease has expired by
the database's clock, i.e. within AUDIFI_LEASE_SECONDS plus one polling round. A clean
stop releases the lease, so a rolling update hands over within one polling round.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable

import structlog

from indexer import metrics
from indexer.errors import DatabaseUnavailable, IndexerError, LeaseLost
from indexer.health import Health
from indexer.pacing import wait_or_stop
from indexer.store.control import (
    Fence,
    acquire_lease,
    current_lease,
    release_lease,
    renew_lease,
)
from indexer.store.state import Store

log = structlog.get_logger("leader")

# What a leader runs: (its fence, an event set when it must stop leading).
Leading = Callable[[Fence, asyncio.Event], Awaitable[None]]


class Leadership:
    """One replica's part in the election for one chain."""

    def __init__(self, store: Store, *, holder: str, seconds: float, health: Health) -> None:
        self.store = store
        self.holder = holder
        self.seconds = seconds
        self.health = health

    @property
    def _round(self) -> float:
        return self.seconds / 3

    async def run(self, stop: asyncio.Event, leading: Leading) -> None:
        """Stand by and lead in turn until `stop`; the lease is released on the way out."""
        while not stop.is_set():
            fence = await self._stand_by(stop)
            if fence is None:
                return
            await self._lead(fence, stop, leading)

    async def _stand_by(self, stop: asyncio.Event) -> Fence | None:
        """Wait until this replica holds the lease; None when stopped first."""
        announced: str | None = None
        while not stop.is_set():
            try:
                fence = await acquire_lease(
                    self.store.pool, self.store.chain_id, self.holder, self.seconds
                )
                if fence is not None:
                    return fence
                lease = await current_lease(self.store.pool, self.store.chain_id)
            except DatabaseUnavailable as e:
                self.health.failed(e)
                log.warning("lease_unavailable", error=str(e))
            else:
                leader = lease.holder if lease else "nobody"
                self.health.standing_by(leader)
                if announced is None:
                    _became("standby", holder=self.holder, leader=leader)
                    announced = leader
            await wait_or_stop(stop, self._round)
        return None

    async def _lead(self, fence: Fence, stop: asyncio.Event, leading: Leading) -> None:
        _became("leader", holder=self.holder, epoch=fence.epoch)
        self.health.leading()
        quit_leading = asyncio.Event()
        watchers = [
            asyncio.create_task(self._renew(fence, quit_leading)),
            asyncio.create_task(_relay(stop, quit_leading)),
        ]
        try:
            await leading(fence, quit_leading)
        except LeaseLost as e:
            log.warning("lease_lost", holder=self.holder, epoch=fence.epoch, error=str(e))
        finally:
            quit_leading.set()
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            metrics.LEADER.set(0)
            metrics.LEASE_AGE.set(math.nan)
            if stop.is_set():
                with contextlib.suppress(IndexerError):
                    await release_lease(self.store.pool, self.store.chain_id, fence)
                    log.info("lease_released", holder=self.holder, epoch=fence.epoch)

    async def _renew(self, fence: Fence, quit_leading: asyncio.Event) -> None:
        """Renew every round; on finding the lease taken over, stop leading."""
        renewed = time.monotonic()
        while not quit_leading.is_set():
            await wait_or_stop(quit_leading, self._round)
            metrics.LEASE_AGE.set(time.monotonic() - renewed)
            try:
                if not await renew_lease(self.store.pool, self.store.chain_id, fence, self.seconds):
                    log.warning("lease_lost", holder=self.holder, epoch=fence.epoch)
                    quit_leading.set()
                    return
            except DatabaseUnavailable as e:  # a commit cannot pass the fence meanwhile
                log.warning("lease_renewal_failed", error=str(e))
                continue
            renewed = time.monotonic()
            metrics.LEASE_AGE.set(0)


async def _relay(stop: asyncio.Event, to: asyncio.Event) -> None:
    await stop.wait()
    to.set()


def _became(role: str, **context: object) -> None:
    metrics.LEADER.set(1 if role == "leader" else 0)
    metrics.ROLE_CHANGES.labels(role).inc()
    log.info("role", role=role, **context)
