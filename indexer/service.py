"""Wiring: settings -> pool, node, store, pipeline; and the daemon's lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from secrets import token_hex

import asyncpg
import structlog

from indexer import __version__, metrics
from indexer.audit import Auditor, EndpointReader, Reader, ReceiptsReader
from indexer.catchup import catch_up
from indexer.chain import Checkpoint, ContractKind, TrackedContract
from indexer.config import Settings, redact_url
from indexer.dbreplica import sample_replica_lag
from indexer.errors import ConfigError, Fatal, IndexerError, Retryable, RpcError, SchemaBehind
from indexer.follow import STOP_GRACE_SECONDS, CatchUp, follow
from indexer.health import Health, serve
from indexer.leader import Leadership
from indexer.migrate import MigrationError, pending_versions
from indexer.pacing import Backoff, wait_or_stop
from indexer.ranges import RangePlanner
from indexer.rpc import RpcClient
from indexer.source import ChainSource
from indexer.step import Pipeline
from indexer.store.control import Fence, Identity, indexed_chains, read_identity, record_identity
from indexer.store.db import connection, create_pool, database_errors
from indexer.store.state import Store
from indexer.views import refresh_views_periodically
from indexer.watchdog import Watchdog

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
    """The primary's pool, direct or through a pooler as AUDIFI_DB_POOL_MODE says."""
    return await create_pool(
        settings.database_dsn(),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        pool_mode=settings.db_pool_mode,
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
async def open_pipeline(
    settings: Settings, *, records: bool = False, first_block: int | None = None
) -> AsyncIterator[Pipeline]:
    """Connect to both ends and build the pipeline; closes everything on exit.

    The index's recorded identity is checked first: settings naming another factory or
    first block are refused (ConfigError, nothing written). A command that `records`
    (run, backfill) records the identity of a new index, starting at AUDIFI_START_BLOCK,
    else `first_block`, else the factory's deployment block (a search through old state,
    the only one: once recorded, no command needs a node with history)."""
    pool = await open_pool(settings)
    rpc = RpcClient(
        settings.rpc_endpoints,
        timeout=settings.rpc_timeout,
        max_retries=settings.rpc_max_retries,
        calls_per_second=settings.rpc_calls_per_second,
    )
    try:
        await require_migrated(pool)
        source = ChainSource(rpc, batch_size=settings.rpc_batch_size)
        chain_id = await source.chain_id()
        if settings.chain_id is not None and settings.chain_id != chain_id:
            raise ConfigError(
                f"AUDIFI_CHAIN_ID is {settings.chain_id} but the node serves chain {chain_id}"
            )
        metrics.label_chain(chain_id)
        store = Store(pool, chain_id, reorg_window=settings.reorg_window)
        since, unrecorded = await _first_block(settings, source, store, records, first_block)
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
            unrecorded=unrecorded,
        )
    finally:
        await rpc.close()
        await pool.close()


@asynccontextmanager
async def open_audit_reader(settings: Settings, p: Pipeline) -> AsyncIterator[Reader]:
    """The audit's independent path: the second provider AUDIFI_AUDIT_RPC_URL when set
    (its chain is checked at its first read, so that its outage delays only the audit),
    else the node's receipts."""
    if settings.audit_rpc_url is None:
        yield ReceiptsReader(p.source)
        return
    rpc = RpcClient(
        [settings.audit_rpc_url],
        timeout=settings.rpc_timeout,
        max_retries=settings.rpc_max_retries,
    )
    try:
        source = ChainSource(rpc, batch_size=settings.rpc_batch_size)
        yield EndpointReader(source, replace(p.planner), chain_id=p.store.chain_id)
    finally:
        await rpc.close()


async def _first_block(
    settings: Settings,
    source: ChainSource,
    store: Store,
    records: bool,
    first_block: int | None,
) -> tuple[int, Identity | None]:
    """The index's first block by its recorded identity, and the identity a new index
    will record (None when recorded already, or for a command that records nothing)."""
    factory, chain_id = settings.factory, store.chain_id
    recorded = await read_identity(store.pool, chain_id)
    if recorded is not None:
        _require_same(settings, recorded)
        return recorded.first_block, None
    if not records:  # read-only, or a test building its own pipeline: as before identities
        if settings.start_block is not None:
            return settings.start_block, None
        return await find_deployment_block(source, factory, await source.head()), None
    others = [c for c in await indexed_chains(store.pool) if c != chain_id]
    if others and settings.chain_id is None:
        raise ConfigError(
            f"this database indexes chain {', '.join(map(str, others))} and the node serves "
            f"chain {chain_id}: set AUDIFI_CHAIN_ID={chain_id} to index another chain here"
        )
    head = await source.head()
    if not await source.has_code(factory, head):
        raise ConfigError(
            f"AUDIFI_FACTORY_ADDRESS: no contract at 0x{factory.hex()} on chain {chain_id}"
        )
    first = settings.start_block if settings.start_block is not None else first_block
    if first is None:
        first = await find_deployment_block(source, factory, head)
    return first, Identity(chain_id, factory, first)


def _require_same(settings: Settings, recorded: Identity) -> None:
    """Refuse settings that name another factory or first block than the index has."""
    factory, chain = settings.factory, recorded.chain_id
    if recorded.factory != factory:
        raise ConfigError(
            f"AUDIFI_FACTORY_ADDRESS is 0x{factory.hex()} but this index of chain {chain} "
            f"follows the factory 0x{recorded.factory.hex()}; to index another factory, "
            f"empty this chain's index first (audifi-indexer forget-chain --chain-id {chain})"
        )
    if settings.start_block is not None and settings.start_block != recorded.first_block:
        raise ConfigError(
            f"AUDIFI_START_BLOCK is {settings.start_block} but this index of chain {chain} "
            f"starts at block {recorded.first_block}; unset it, or empty this chain's index "
            f"first (audifi-indexer forget-chain --chain-id {chain})"
        )


async def record_identity_if_new(p: Pipeline, settings: Settings) -> None:
    """Record a new index's identity, and its checkpoint just before its first block,
    before its first write. A backfill that starts the index at its first block then
    moves that checkpoint as its batches commit in order, so `run` after it continues
    where it ended. A concurrent first start with other settings that won the race is
    refused like any other mismatch."""
    if p.unrecorded is None:
        return
    recorded = await record_identity(p.store.pool, p.unrecorded)
    _require_same(settings, recorded)
    if recorded == p.unrecorded:
        log.info(
            "identity_recorded",
            chain_id=recorded.chain_id,
            factory="0x" + recorded.factory.hex(),
            first_block=recorded.first_block,
        )
    p.unrecorded = None
    await ensure_checkpoint(p)


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


@asynccontextmanager
async def metrics_served(settings: Settings) -> AsyncIterator[None]:
    """/metrics (and the health endpoints) for a one-shot command such as a backfill, so
    that its progress gauges can be scraped; a port already taken (a daemon on the same
    host) is a warning, not a failure of the command."""
    metrics.BUILD_INFO.info({"version": __version__})
    try:
        runner = await serve(
            Health(None, max_lag_blocks=0), host=settings.metrics_host, port=settings.metrics_port
        )
    except OSError as e:
        log.warning("metrics_unavailable", port=settings.metrics_port, error=str(e))
        yield
        return
    bound = runner.addresses[0][1]
    log.info("serving", metrics=f"http://{settings.metrics_host}:{bound}/metrics")
    try:
        yield
    finally:
        await runner.cleanup()


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
    # AUDIFI_METRICS_PORT=0 picks a free port: say the one bound, not 0.
    settings = settings.model_copy(update={"metrics_port": runner.addresses[0][1]})
    log.info("serving", metrics=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    work = asyncio.ensure_future(_connect_and_follow(settings, stop, health))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done() and health.store is not None:
            # Stopped while connected: the follower finishes a write in flight (its own
            # waits are bounded), hands its lease back and returns.
            await work
        elif not work.done():
            # Stopped while still connecting (a node or database that does not answer):
            # nothing is written yet, nothing is lost.
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
        else:
            work.result()
    except IndexerError as e:  # the last line says why (the CLI's one line repeats it)
        log.error("stopped", error=str(e), error_type=type(e).__name__)
        raise
    else:
        log.info("stopped")
    finally:
        stopping.cancel()
        await runner.cleanup()


async def _connect_and_follow(settings: Settings, stop: asyncio.Event, health: Health) -> None:
    backoff = Backoff()
    while not stop.is_set():
        try:
            async with open_pipeline(settings, records=True) as p:
                health.store = p.store
                await _serve_and_follow(p, settings, stop, health)
                return
        except Retryable as e:
            health.failed(e)
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
    """Stand by or lead until stopped; while leading, follow with the lease's fence."""
    beside: list[asyncio.Task[None]] = []  # on the side, whether leading or standing by
    if settings.view_refresh_interval > 0:
        beside.append(
            asyncio.create_task(
                refresh_views_periodically(p.store.pool, settings.view_refresh_interval, stop)
            )
        )
    if settings.database_replica_url is not None:
        beside.append(
            asyncio.create_task(sample_replica_lag(settings, p.store.pool, p.store.chain_id, stop))
        )
    holder = f"{settings.replica_name or socket.gethostname()}:{os.getpid()}:{token_hex(3)}"
    leadership = Leadership(p.store, holder=holder, seconds=settings.lease_seconds, health=health)

    async def lead(fence: Fence, until: asyncio.Event) -> None:
        p.fence = fence
        try:
            await record_identity_if_new(p, settings)
            checkpoint = await ensure_checkpoint(p)
            log.info(
                "started",
                chain_id=p.store.chain_id,
                checkpoint=checkpoint.number,
                epoch=fence.epoch,
                metrics=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics",
            )
            await _follow_or_linger(p, settings, until, health)
        finally:
            p.fence = None

    try:
        await leadership.run(stop, lead)
    finally:
        for task in beside:
            task.cancel()
        await asyncio.gather(*beside, return_exceptions=True)


def _catch_up(p: Pipeline, settings: Settings, stop: asyncio.Event, health: Health) -> CatchUp:
    async def caught_up(start: int, end: int, head: int) -> None:
        await catch_up(
            p,
            start,
            end,
            head=head,
            concurrency=settings.fetch_concurrency,
            stop=stop,
            health=health,
        )

    return caught_up


async def _follow_or_linger(
    p: Pipeline, settings: Settings, stop: asyncio.Event, health: Health
) -> None:
    """Follow; on a fatal error keep serving metrics (unready) for AUDIFI_FATAL_LINGER
    seconds before exiting, so Prometheus scrapes the reason (e.g. a too-deep reorg)."""
    try:
        if settings.audit:
            async with open_audit_reader(settings, p) as reader:
                await _follow_guarded(p, settings, stop, health, reader)
        else:
            await _follow_guarded(p, settings, stop, health, None)
    except Fatal as e:
        health.halt(type(e).__name__)
        log.error("fatal", error=str(e), linger_s=settings.fatal_linger)
        await wait_or_stop(stop, settings.fatal_linger)
        raise


async def _follow_guarded(
    p: Pipeline,
    settings: Settings,
    stop: asyncio.Event,
    health: Health,
    reader: Reader | None,
) -> None:
    """Follow with the watchdog and the auditor beside it. Either failing stops the
    follower, and its error is raised once the follower has stopped."""
    stopping = asyncio.Event()
    watchdog = Watchdog(
        stall_seconds=settings.stall_seconds,
        stall_blocks=settings.stall_blocks,
        exit_seconds=settings.stall_exit_seconds,
    )
    guards = [asyncio.create_task(watchdog.run(p, health, stopping))]
    if reader is not None:
        depth = settings.reorg_window if settings.audit_depth is None else settings.audit_depth
        auditor = Auditor(
            p, reader, depth=depth, calls_per_second=settings.audit_requests_per_second
        )
        guards.append(asyncio.create_task(auditor.run(stopping)))
    relay = asyncio.create_task(stop.wait())
    relay.add_done_callback(lambda _: stopping.set())
    for guard in guards:
        guard.add_done_callback(lambda _: stopping.set())
    try:
        await follow(
            p,
            poll_interval=settings.poll_interval,
            stop=stopping,
            health=health,
            catch_up=_catch_up(p, settings, stopping, health),
        )
    finally:
        stopping.set()
        relay.cancel()
        try:  # a guard in a long request (a node that hangs) must not hold up the stop
            await asyncio.wait(guards, timeout=STOP_GRACE_SECONDS)
        finally:
            for guard in guards:
                guard.cancel()
            ended = await asyncio.gather(*guards, return_exceptions=True)
    for outcome in ended:
        if isinstance(outcome, Exception):
            raise outcome
