"""Wiring: settings -> pool, node, store, pipeline; and the daemon's lifecycle."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog

from indexer import __version__, metrics
from indexer.backfill import backfill
from indexer.chain import Checkpoint, ContractKind, TrackedContract
from indexer.config import Settings, redact_url
from indexer.errors import Fatal, Retryable, RpcError, SchemaBehind
from indexer.follow import CatchUp, follow
from indexer.health import Health, serve
from indexer.migrate import MigrationError, pending_versions
from indexer.pacing import Backoff, wait_or_stop
from indexer.ranges import RangePlanner
from indexer.rpc import RpcClient
from indexer.source import ChainSource
from indexer.step import Pipeline
from indexer.store.db import connection, create_pool, database_errors
from indexer.store.state import Store
from indexer.views import refresh_views_periodically

log = structlog.get_logger("service")


async def find_deployment_block(source: ChainSource, address: bytes, head: int) -> int:
    """The first block at which `address` has code (binary search over eth_getCode)."""
    if not await source.has_code(address, head):
        raise Fatal(f"no contract at AUDIFI_FACTORY_ADDRESS 0x{address.hex()} on this chain")
    low, high = 0, head
    try:
        while low < high:
            middle = (low + high) // 2
            if await source.has_code(address, middle):
                high = middle
            else:
                low = middle + 1
    except RpcError as e:
        raise Fatal(
            f"finding the factory's deployment block: {e}; this node keeps no history "
            "that old, so set AUDIFI_START_BLOCK"
        ) from e
    return low


async def open_pool(settings: Settings) -> asyncpg.Pool:
    return await create_pool(
        settings.database_dsn(),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )


async def require_migrated(pool: asyncpg.Pool) -> None:
    try:
        async with database_errors("checking the schema"), connection(pool) as conn:
            pending = await pending_versions(conn)
    except MigrationError as e:
        raise Fatal(f"checking the schema: {e}") from e
    if pending:
        raise SchemaBehind(
            f"the database is behind: migrations {pending} are pending; "
            "run `audifi-indexer migrate up` first"
        )


@asynccontextmanager
async def open_pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    """Connect to both ends and build the pipeline; closes everything on exit."""
    pool = await open_pool(settings)
    rpc = RpcClient(
        settings.rpc_endpoints, timeout=settings.rpc_timeout, max_retries=settings.rpc_max_retries
    )
    try:
        await require_migrated(pool)
        source = ChainSource(rpc, batch_size=settings.rpc_batch_size)
        chain_id = await source.chain_id()
        if settings.chain_id is not None and settings.chain_id != chain_id:
            raise Fatal(f"AUDIFI_CHAIN_ID is {settings.chain_id} but the node serves {chain_id}")
        store = Store(pool, chain_id, reorg_window=settings.reorg_window)
        since = settings.start_block
        if since is None:
            since = await find_deployment_block(source, settings.factory, await source.head())
        planner = RangePlanner(
            span=settings.getlogs_initial_range,
            max_span=settings.getlogs_max_range,
            target_logs=settings.batch_max_logs,
        )
        yield Pipeline(
            source=source,
            store=store,
            factory=TrackedContract(settings.factory, ContractKind.FACTORY, since),
            planner=planner,
            reorg_window=settings.reorg_window,
            confirmations=settings.confirmations,
        )
    finally:
        await rpc.close()
        await pool.close()


async def ensure_checkpoint(p: Pipeline) -> Checkpoint:
    """The stored checkpoint, created just before the start block on first start."""
    existing = await p.store.checkpoint()
    if existing is not None:
        return existing
    before = p.factory.since_block - 1
    header = (await p.source.headers([before]))[before] if before >= 0 else None
    checkpoint = Checkpoint(before, header.hash if header else bytes(32))
    await p.store.init_checkpoint(checkpoint)
    log.info("checkpoint_created", block=before)
    return checkpoint


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_daemon(settings: Settings) -> None:
    """The long-running follower: serves health and metrics at once, waits for its
    dependencies (unready meanwhile), then follows until signalled."""
    stop = asyncio.Event()
    _install_signals(stop)
    metrics.BUILD_INFO.info({"version": __version__})
    # Staying AUDIFI_CONFIRMATIONS behind on purpose is not lag.
    health = Health(None, max_lag_blocks=settings.ready_max_lag_blocks + settings.confirmations)
    try:
        runner = await serve(health, host=settings.metrics_host, port=settings.metrics_port)
    except OSError as e:
        raise Fatal(
            f"metrics server cannot listen on {settings.metrics_host}:{settings.metrics_port}: {e}"
        ) from e
    try:
        await _connect_and_follow(settings, stop, health)
    finally:
        await runner.cleanup()
        log.info("stopped")


async def _connect_and_follow(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    backoff = Backoff()
    while not stop.is_set():
        try:
            async with open_pipeline(settings) as p:
                health.store = p.store
                await _serve_and_follow(p, settings, stop, health)
                return
        except Retryable as e:
            health.failed()
            log.warning(
                "waiting_for_dependencies",
                error=str(e),
                database=redact_url(settings.database_dsn()),
                rpc=[redact_url(u) for u in settings.rpc_endpoints],
            )
            await wait_or_stop(stop, backoff.next())


async def _serve_and_follow(
    p: Pipeline, settings: Settings, stop: asyncio.Event, health: Health
) -> None:
    checkpoint = await ensure_checkpoint(p)
    position = await p.store.position()
    refresher = None
    if settings.view_refresh_interval > 0:
        refresher = asyncio.create_task(
            refresh_views_periodically(p.store.pool, settings.view_refresh_interval, stop)
        )
    log.info(
        "started",
        chain_id=p.store.chain_id,
        checkpoint=checkpoint.number,
        contracts=len(position.contracts) + 1,
        metrics=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics",
    )
    try:
        await _follow_or_linger(p, settings, stop, health)
    finally:
        if refresher is not None:
            refresher.cancel()


def _catch_up(p: Pipeline, settings: Settings, stop: asyncio.Event, health: Health) -> CatchUp:
    """The daemon's catch-up: the backfill driver over [start, end], reporting progress
    to the health endpoints as each batch commits."""

    async def catch_up(start: int, end: int, head: int) -> None:
        await backfill(
            p,
            start,
            end,
            head=head,
            concurrency=settings.fetch_concurrency,
            stop=stop,
            on_progress=lambda done: health.progressed(start - 1 + done.done_blocks, head=head),
        )

    return catch_up


async def _follow_or_linger(
    p: Pipeline, settings: Settings, stop: asyncio.Event, health: Health
) -> None:
    """Follow; on a fatal error keep serving metrics (unready) for AUDIFI_FATAL_LINGER
    seconds before exiting, so Prometheus scrapes the reason (e.g. a too-deep reorg)."""
    try:
        await follow(
            p,
            poll_interval=settings.poll_interval,
            stop=stop,
            health=health,
            catch_up=_catch_up(p, settings, stop, health),
        )
    except Fatal as e:
        health.halt(type(e).__name__)
        log.error("fatal", error=str(e), linger_s=settings.fatal_linger)
        await wait_or_stop(stop, settings.fatal_linger)
        raise
