"""Refresh the dashboards' materialized views now and then, without blocking readers."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from indexer.errors import IndexerError
from indexer.pacing import wait_or_stop
from indexer.store.ops import refresh_views

log = structlog.get_logger("views")


async def refresh_views_periodically(
    pool: asyncpg.Pool, interval: float, stop: asyncio.Event
) -> None:
    """Refresh every `interval` seconds until stopped; a failure is logged, not raised
    (the views are a convenience for dashboards, the index does not depend on them)."""
    while not stop.is_set():
        try:
            await refresh_views(pool)
            log.debug("views_refreshed")
        except IndexerError as e:
            log.warning("views_refresh_failed", error=str(e))
        await wait_or_stop(stop, interval)
