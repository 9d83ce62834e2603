"""The one-shot operator commands behind the CLI (backfill, rewind, status, migrate)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import orjson
import structlog
import typer

from indexer import metrics, migrate, statusreport
from indexer.audit import AuditReport, audit_range
from indexer.backfill import backfill_ranges
from indexer.chain import Checkpoint
from indexer.config import Settings
from indexer.dbreplica import open_replica
from indexer.errors import ConfigError, Fatal
from indexer.progress import Progress, ProgressLog
from indexer.service import (
    metrics_served,
    open_audit_reader,
    open_pipeline,
    open_pool,
    record_identity_if_new,
)
from indexer.shards import BlockRange, Shard, stripes, uncommitted
from indexer.step import Pipeline
from indexer.store.db import connection
from indexer.store.ops import VIEWS, refresh_views
from indexer.store.state import forget_chain

log = structlog.get_logger("commands")

_REWIND_PAGE = 200


def _progress_printer() -> Callable[[Progress], None]:
    """A bar on a terminal; a `backfill_progress` line every few seconds otherwise."""
    if not sys.stderr.isatty():
        return ProgressLog("backfill_progress")

    def show(p: Progress) -> None:
        eta = "" if p.eta_s is None else f", ETA {p.eta_s:,.0f} s"
        sys.stderr.write(
            f"\r[{'#' * int(p.share * 30):<30}] {p.share:6.1%} blocks "
            f"{p.done_blocks}/{p.total_blocks} ({p.blocks_per_s:,.0f}/s), logs {p.logs:,}, "
            f"new rows {p.events:,}{eta}   "
        )
        sys.stderr.flush()

    return show


async def run_backfill(
    settings: Settings, from_block: int, to_block: int, *, audit: bool, shard: Shard | None = None
) -> None:
    """Index the range (or the shard's stripes of it); then, unless told not to, audit
    it (and heal what the node got wrong), so that a backfill ends equal to the chain
    even behind a provider that lies."""
    async with open_pipeline(settings, records=True, first_block=from_block) as p:
        head = await p.source.head()
        if to_block > head:  # bad input, like the other argument errors: exit 2
            raise ConfigError(f"--to-block {to_block} is beyond the node's head {head}")
        await record_identity_if_new(p, settings)
        ranges = [(from_block, to_block)]
        if shard is not None:
            ranges = await _shard_ranges(p, from_block, to_block, shard)
        async with metrics_served(settings):
            await _backfill_and_audit(settings, p, ranges, head=head, audit=audit)


async def _shard_ranges(
    p: Pipeline, from_block: int, to_block: int, shard: Shard
) -> list[BlockRange]:
    """The shard's stripes less what is committed already (a retried shard resumes)."""
    mine = stripes(from_block, to_block, shard)
    committed = [(span.from_block, span.to_block) for span in await p.store.coverage()]
    left = uncommitted(mine, committed)
    log.info(
        "shard",
        shard=str(shard),
        stripes=len(mine),
        blocks=sum(end - start + 1 for start, end in mine),
        left_blocks=sum(end - start + 1 for start, end in left),
    )
    return left


async def _backfill_and_audit(
    settings: Settings, p: Pipeline, ranges: list[BlockRange], *, head: int, audit: bool
) -> None:
    done = await backfill_ranges(
        p,
        ranges,
        head=head,
        concurrency=settings.fetch_concurrency,
        on_progress=_progress_printer(),
    )
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    http_requests, rpc_calls = metrics.rpc_totals()
    log.info(
        "backfill_done",
        from_block=ranges[0][0] if ranges else None,
        to_block=ranges[-1][1] if ranges else None,
        ranges=len(ranges),
        blocks=done.total_blocks,
        logs=done.logs,
        events=done.events,
        elapsed_s=round(done.elapsed, 2),
        events_per_s=round(done.events / done.elapsed) if done.elapsed else 0,
        http_requests=http_requests,
        rpc_calls=rpc_calls,
    )
    if audit and settings.audit:
        for start, end in ranges:
            await _audit(settings, p, start, end, heal=True)


async def run_audit(settings: Settings, from_block: int, to_block: int, *, heal: bool) -> bool:
    """Audit [from_block, to_block]; True unless differences were found and left."""
    async with open_pipeline(settings) as p:
        head = await p.source.head()
        if to_block > head:
            raise ConfigError(f"--to-block {to_block} is beyond the node's head {head}")
        report = await _audit(settings, p, from_block, to_block, heal=heal)
    return heal or not report.found


async def _audit(
    settings: Settings, p: Pipeline, from_block: int, to_block: int, *, heal: bool
) -> AuditReport:
    started = time.perf_counter()
    async with open_audit_reader(settings, p) as reader:
        report = await audit_range(p, reader, from_block, to_block, heal=heal)
    log.info(
        "audit_done",
        from_block=from_block,
        to_block=to_block,
        source=reader.name,
        blocks=report.blocks,
        discrepancies=len(report.found),
        healed=len(report.found) if heal else 0,
        reorging=report.reorging,
        rpc_calls=report.calls,
        elapsed_s=round(time.perf_counter() - started, 2),
    )
    return report


async def run_rewind(settings: Settings, to_block: int) -> None:
    """The way out after a fork below the window: drop what is above, then restart `run`.

    Refuses a block that would keep rows from the lost branch, and names one that is safe."""
    async with open_pipeline(settings) as p:
        checkpoint = await p.store.checkpoint()  # bad input writes nothing, not even this
        if checkpoint is None or to_block >= checkpoint.number:
            at = "none yet" if checkpoint is None else f"at block {checkpoint.number}"
            raise ConfigError(f"nothing to rewind: the checkpoint is {at}")
        header = (await p.source.headers([to_block]))[to_block]
        if header is None:
            raise ConfigError(f"--to-block {to_block} is beyond the node's head")
        await _require_canonical_below(p, to_block)
        reverted = await p.store.rewind(
            Checkpoint(to_block, header.hash), old_head=None, cause="operator"
        )
    log.info("rewound", to_block=to_block, events_reverted=reverted.raw_rows)


async def _require_canonical_below(p: Pipeline, to_block: int) -> None:
    """Walk the stored blocks at or below `to_block`, newest first, until one matches the
    node: everything below a match is canonical. A mismatch above it means the fork is
    deeper than `to_block`."""
    top = to_block
    lost: int | None = None
    while True:
        stored = await p.store.stored_blocks_below(top, limit=_REWIND_PAGE)
        if not stored:
            return
        node = await p.source.headers(n for n, _ in stored)
        hashes: dict[int, set[bytes]] = {}
        for number, stored_hash in stored:
            hashes.setdefault(number, set()).add(stored_hash)
        for number in sorted(hashes, reverse=True):
            header = node[number]
            if header is not None and hashes[number] == {header.hash}:
                if lost is None:
                    return
                raise Fatal(
                    f"block {lost} at or below {to_block} is from a lost branch: "
                    f"rewind with --to-block {number} instead"
                )
            lost = lost or number
        top = stored[-1][0] - 1


async def run_status(settings: Settings, *, as_json: bool) -> None:
    """The status as read from the replica when AUDIFI_DATABASE_REPLICA_URL is set (with
    its lag behind the primary), else from the primary."""
    async with open_pipeline(settings) as p, open_replica(settings) as replica:
        report = await statusreport.collect(p, replica)
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(statusreport.render(report))


async def run_refresh_views(settings: Settings) -> None:
    pool = await open_pool(settings)
    try:
        await refresh_views(pool)
    finally:
        await pool.close()
    typer.echo(f"refreshed: {', '.join(VIEWS)}")


async def run_migrate(settings: Settings, action: str, to: int | None) -> None:
    pool = await open_pool(settings)
    try:
        async with connection(pool) as conn:
            if action == "up":
                applied = await migrate.migrate_up(conn, to=to)
                typer.echo(f"applied: {applied or 'nothing to do'}")
            elif action == "down":
                assert to is not None
                reverted = await migrate.migrate_down(conn, to=to)
                typer.echo(f"reverted: {reverted or 'nothing to do'}")
            else:
                for state in await migrate.migration_status(conn):
                    mark = "applied" if state.applied else "pending"
                    bad = "" if state.checksum_ok in (True, None) else "  FILE CHANGED"
                    typer.echo(f"{state.version:04d} {state.name:<24} {mark}{bad}")
    except migrate.UnknownTarget as e:
        raise ConfigError(str(e)) from e
    except migrate.MigrationError as e:
        raise Fatal(str(e)) from e
    finally:
        await pool.close()


async def run_forget_chain(settings: Settings, chain_id: int) -> None:
    pool = await open_pool(settings)
    try:
        reverted = await forget_chain(pool, chain_id)
    finally:
        await pool.close()
    typer.echo(f"chain {chain_id}: index emptied ({reverted.raw_rows} raw rows removed)")
