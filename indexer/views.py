"""Refresh the dashboards' materialized views without blocking their readers."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

log = structlog.get_logger("views")

VIEWS = ("artist_performance", "master_ipo_stats")


async def refresh_views(pool: asyncpg.Pool) -> None:
    """REFRESH ... CONCURRENTLY each view (readers keep the old contents meanwhile)."""
    async with pool.acquire() as conn:
        for view in VIEWS:
            await conn.execute(f"refresh materialized view concurrently {view}")


async def refresh_views_periodically(
    pool: asyncpg.Pool, interval: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await refresh_views(pool)
            log.debug("views_refreshed")
        except (asyncpg.PostgresError, OSError) as e:
            log.warning("views_refresh_failed", error=str(e))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
