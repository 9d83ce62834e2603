"""The read replica (AUDIFI_DATABASE_REPLICA_URL): its pool, for the read-only commands,
and the daemon's sampler of its lag behind the primary, exported as metrics."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog

from indexer import metrics
from indexer.config import Settings
from indexer.errors import IndexerError
from indexer.pacing import wait_or_stop
from indexer.store.db import create_pool
from indexer.store.replica import Lag, measure_lag

log = structlog.get_logger("dbreplica")


@asynccontextmanager
async def open_replica(settings: Settings) -> AsyncIterator[asyncpg.Pool | None]:
    """The read replica's pool (AUDIFI_DATABASE_REPLICA_URL), None when unset; closed on
    exit. Reached like the primary (AUDIFI_DB_POOL_MODE); for reads only: whoever reads
    it checks first that it is a standby of the primary (store/replica.measure_lag)."""
    if settings.database_replica_url is None:
        yield None
        return
    pool = await create_pool(
        settings.database_replica_url.get_secret_value(),
        min_size=1,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        pool_mode=settings.db_pool_mode,
    )
    try:
        yield pool
    finally:
        await pool.close()


async def sample_replica_lag(
    settings: Settings, primary: asyncpg.Pool, chain_id: int, stop: asyncio.Event
) -> None:
    """The replica's lag as metrics every AUDIFI_DATABASE_REPLICA_SAMPLE_INTERVAL seconds,
    beside the follower and on connections of its own (never inside a write). While it
    cannot be measured (the replica does not answer, or is not a standby of the primary)
    the lag reads unknown (NaN), the last-sample time stands still, and each new reason
    is one warning line; indexing never depends on the replica."""
    interval = settings.database_replica_sample_interval
    metrics.DB_REPLICA_SAMPLED.set(0)
    failing: str | None = None
    while not stop.is_set():
        try:
            async with open_replica(settings) as replica:
                assert replica is not None
                while not stop.is_set():
                    _export_lag(await measure_lag(primary, replica, chain_id))
                    if failing is not None:
                        log.info("db_replica_measured")
                        failing = None
                    await wait_or_stop(stop, interval)
        except IndexerError as e:
            for gauge in _REPLICA_LAG_GAUGES:
                gauge.set(math.nan)
            if str(e) != failing:
                log.warning("db_replica_unmeasured", error=str(e))
                failing = str(e)
            await wait_or_stop(stop, interval)


_REPLICA_LAG_GAUGES = (
    metrics.DB_REPLICA_LAG_BYTES,
    metrics.DB_REPLICA_LAG_SECONDS,
    metrics.DB_REPLICA_LAG_BLOCKS,
)


def _export_lag(lag: Lag) -> None:
    metrics.DB_REPLICA_LAG_BYTES.set(lag.bytes)
    metrics.DB_REPLICA_LAG_SECONDS.set(math.nan if lag.seconds is None else lag.seconds)
    metrics.DB_REPLICA_LAG_BLOCKS.set(math.nan if lag.blocks is None else lag.blocks)
    metrics.DB_REPLICA_SAMPLED.set(time.time())
