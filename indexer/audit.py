"""The auditor: re-read committed blocks by a path that does not go through the answers
they were indexed from, compare them with the coverage ledger, heal what differs.

    read     per block, its header and receipts (eth_getBlockReceipts) from the node; or,
             with AUDIFI_AUDIT_RPC_URL, eth_getLogs and headers from that second provider
    compare  the ledger entry computed, by the same function, from what was committed
    heal     the block's rows replaced by what the chain holds, derived state recomputed,
             the ledger rewritten, the discrepancy recorded and announced: ONE transaction
             (the unit of work's commit, fenced like any other)

A block hash that differs inside the reorg window is a reorg in progress, the
follower's to handle: counted, never healed here.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from indexer import metrics
from indexer.chain import BlockRef, Event, Position, Quarantined, RawLog
from indexer.decode import follows
from indexer.errors import ConfigError, RangeTooLarge, Retryable, RpcError
from indexer.ledger import Discrepancy, compare, ledger_of
from indexer.pacing import Backoff, wait_or_stop
from indexer.ranges import RangePlanner
from indexer.registry import Registry
from indexer.source import BlockLogs, ChainSource
from indexer.step import Decoded, Pipeline, commit, decode_tracked, prepare
from indexer.store.coverage import Span

log = structlog.get_logger("audit")

AUDIT_CHUNK_BLOCKS = 100  # blocks read and compared per turn, at most...
AUDIT_CHUNK_LOGS = 20_000  # ... and about this many logs of tracked contracts


class Reader(Protocol):
    """An independent way to read what committed blocks hold."""

    name: str  # recorded with each discrepancy: "receipts" or "audit_endpoint"

    async def read(self, start: int, end: int, addresses: Sequence[bytes]) -> AuditRead: ...


@dataclass(frozen=True, slots=True)
class AuditRead:
    blocks: dict[int, BlockLogs]  # every block of the range
    calls: int  # JSON-RPC calls it took


@dataclass(slots=True)
class ReceiptsReader:
    """Headers and receipts from the indexing node: every log of every block, whatever
    eth_getLogs would have answered. Two calls per block."""

    source: ChainSource
    name: str = "receipts"

    async def read(self, start: int, end: int, addresses: Sequence[bytes]) -> AuditRead:
        numbers = list(range(start, end + 1))
        try:
            blocks = await self.source.receipts(numbers, addresses)
        except RpcError as e:
            raise ConfigError(
                f"the audit reads eth_getBlockReceipts, which the node refuses ({e}): set "
                "AUDIFI_AUDIT_RPC_URL to a second provider to audit against, or "
                "AUDIFI_AUDIT=false to index without the audit"
            ) from e
        return AuditRead(blocks, calls=2 * len(numbers))


@dataclass(slots=True)
class EndpointReader:
    """eth_getLogs and every header from a second provider (AUDIFI_AUDIT_RPC_URL), with
    the same validation as indexing: one call per block plus one per range."""

    source: ChainSource
    planner: RangePlanner
    chain_id: int  # the index's: the provider must serve it
    name: str = "audit_endpoint"
    checked: bool = False

    async def read(self, start: int, end: int, addresses: Sequence[bytes]) -> AuditRead:
        if not self.checked:
            served = await self.source.chain_id()
            if served != self.chain_id:
                raise ConfigError(
                    f"AUDIFI_AUDIT_RPC_URL serves chain {served}, not chain {self.chain_id}"
                )
            self.checked = True
        blocks: dict[int, BlockLogs] = {}
        calls = 0
        while start <= end:
            stop = self.planner.end_for(start, end)
            calls += stop - start + 2
            try:
                fetched = await self.source.fetch(start, stop, addresses, all_headers=True)
            except RangeTooLarge as e:
                self.planner.refused(e, start=start, end=stop)
                continue
            self.planner.succeeded(blocks=stop - start + 1, logs=len(fetched.logs))
            by_block: dict[int, list[RawLog]] = defaultdict(list)
            for raw in fetched.logs:
                by_block[raw.block_number].append(raw)
            for number in range(start, stop + 1):
                blocks[number] = BlockLogs(fetched.headers[number], by_block.get(number, []))
            start = stop + 1
        return AuditRead(blocks, calls)


@dataclass(slots=True)
class AuditReport:
    blocks: int = 0  # committed blocks compared
    found: list[Discrepancy] = field(default_factory=list)  # healed unless told not to
    reorging: int = 0  # block hash changed inside the reorg window: the follower's to handle
    calls: int = 0


async def audit_range(
    p: Pipeline,
    reader: Reader,
    start: int,
    end: int,
    *,
    heal: bool = True,
    audit_pass: str = "command",
) -> AuditReport:
    """Compare every committed block of [start, end] with the chain; heal each that
    differs (unless `heal` is False). Blocks the index does not cover are skipped.

    A heal that adds a contract (the node had left its deployment out) extends the audit
    to every committed block above: the new contract's logs there were never fetched."""
    report = AuditReport()
    spans = await p.store.coverage()
    for span in spans:
        first, last = max(start, span.from_block), min(end, span.to_block)
        if first <= last and await _audit_span(p, reader, first, last, heal, report):
            end = max(end, spans[-1].to_block)
            await _audit_span(p, reader, last + 1, span.to_block, heal, report)
    metrics.AUDITED_BLOCKS.labels(audit_pass).inc(report.blocks)
    metrics.AUDIT_CALLS.inc(report.calls)
    return report


async def _audit_span(
    p: Pipeline, reader: Reader, start: int, end: int, heal: bool, report: AuditReport
) -> bool:
    """Audit [start, end]; True if a heal added a contract (the rest is audited with it)."""
    position = await p.store.position()
    registry = p.registry(position)
    planner = RangePlanner(span=1, max_span=AUDIT_CHUNK_BLOCKS, target_logs=AUDIT_CHUNK_LOGS)
    added = False
    number = start
    while number <= end:
        last = planner.end_for(number, end)
        head = await p.source.head()
        read = await reader.read(number, last, registry.addresses(up_to=last))
        stored = await p.store.ledger(number, last)
        report.calls += read.calls
        planner.succeeded(
            blocks=last - number + 1, logs=sum(len(b.logs) for b in read.blocks.values())
        )
        chunk, number = range(number, last + 1), last + 1
        for block_number in chunk:
            block = read.blocks[block_number]
            entries = ledger_of(_followed(block.logs, registry))
            found = compare(
                block_number,
                stored.get(block_number),
                entries[0] if entries else None,
                block.header.hash,
                reader.name,
            )
            report.blocks += 1
            if found is None:
                continue
            if found.kind == "block_hash" and block_number > head - p.reorg_window:
                report.reorging += 1
                continue
            report.found.append(found)
            metrics.AUDIT_DISCREPANCIES.labels(found.kind).inc()
            if not heal:
                _log_found(found, healed=None)
                continue
            items = decode_tracked(block.logs, registry)[0]
            after = await _heal(p, found, block.header, items, head)
            if _addresses(after) != _addresses(position):
                # A deployment was missing: this block again, and on, with the child known.
                position, registry, added = after, p.registry(after), True
                number = block_number
                break
    return added


def _followed(logs: list[RawLog], registry: Registry) -> Iterator[RawLog]:
    """The logs the index holds rows for (what `decode_tracked` keeps), undecoded."""
    for raw in logs:
        contract = registry.get(raw.address)
        if contract and raw.block_number >= contract.since_block and follows(raw, contract):
            yield raw


def _addresses(position: Position) -> set[bytes]:
    return {c.address for c in position.contracts}


async def _heal(
    p: Pipeline,
    found: Discrepancy,
    header: BlockRef,
    items: list[Event | Quarantined],
    head: int,
) -> Position:
    number = found.block_number
    prepared = prepare(Decoded(number, number, {number: header}, items), p.store.chain_id)
    committed = await commit(p, prepared, head=head, expected=None, durable=True, heal=found)
    removed = committed.reverted.raw_rows if committed.reverted else 0
    _log_found(found, healed=(removed, sum(committed.new_rows.values())))
    return committed.position


def _log_found(found: Discrepancy, *, healed: tuple[int, int] | None) -> None:
    log.warning(
        "audit_discrepancy",
        block=found.block_number,
        kind=found.kind,
        ledger_logs=found.ledger.log_count if found.ledger else 0,
        chain_logs=found.chain.log_count if found.chain else 0,
        source=found.source,
        healed=healed is not None,
        rows_removed=healed[0] if healed else None,
        rows_added=healed[1] if healed else None,
    )


@dataclass(slots=True)
class Auditor:
    """The daemon's audit, under a request budget: every block right after it commits
    (the tip pass, which catches an answer that left logs out within seconds), and every
    block again once it is `depth` blocks below the head (the deep pass, whose position
    is stored: it resumes after a restart and never skips a block)."""

    p: Pipeline
    reader: Reader
    depth: int
    calls_per_second: float
    idle_seconds: float = 1.0
    tip_next: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                calls = await self.turn()
            except Retryable as e:
                metrics.STEP_RETRIES.labels(type(e).__name__).inc()
                log.warning("audit_retry", error=str(e), error_type=type(e).__name__)
                await wait_or_stop(stop, backoff.next(e))
                continue
            backoff.reset()
            await wait_or_stop(stop, calls / self.calls_per_second if calls else self.idle_seconds)

    async def turn(self) -> int:
        """Audit the next chunk, tip pass first; the JSON-RPC calls it took (0: idle)."""
        checkpoint = await self.p.store.checkpoint()
        if checkpoint is None:
            return 0
        deep_to = min(checkpoint.number, await self.p.source.head() - self.depth)
        if self.tip_next is None or self.tip_next > checkpoint.number + 1:  # start, rewind
            self.tip_next = checkpoint.number + 1
        # The tip pass keeps to the blocks the deep pass has not reached yet: behind a
        # long catch-up it skips ahead, and the deep pass audits what it skipped.
        self.tip_next = max(self.tip_next, deep_to + 1)
        if self.tip_next <= checkpoint.number:
            end = min(checkpoint.number, self.tip_next + AUDIT_CHUNK_BLOCKS - 1)
            report = await audit_range(self.p, self.reader, self.tip_next, end, audit_pass="tip")
            self.tip_next = end + 1
            return max(1, report.calls)
        audited = await self.p.store.audit_position()
        spans = await self.p.store.coverage()
        metrics.COMMITTED_RANGES.set(len(spans))
        metrics.AUDITED_BLOCK.set(audited.audited_to)
        metrics.AUDIT_BACKLOG_BLOCKS.set(max(0, deep_to - audited.audited_to))
        start = _next_covered(spans, after=audited.audited_to)
        if start is None or start > deep_to:
            return 0
        end = min(deep_to, start + AUDIT_CHUNK_BLOCKS - 1)
        started = time.perf_counter()
        report = await audit_range(self.p, self.reader, start, end, audit_pass="deep")
        await self.p.store.mark_audited(end, was=audited)
        metrics.AUDITED_BLOCK.set(end)
        log.debug("audited", to_block=end, blocks=report.blocks, ms=_ms(started))
        return max(1, report.calls)


def _next_covered(spans: Sequence[Span], *, after: int) -> int | None:
    """The first committed block above `after`."""
    for span in spans:
        if span.to_block > after:
            return max(span.from_block, after + 1)
    return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
