"""The unit of work both drivers share: fetch and prepare a range; commit a prepared range.

    fetch_prepared  node -> validated logs and headers (source) -> events, with the children
                    the factory deploys inside the range discovered and fetched in the same
                    step (decode, registry) -> cut into batches of bounded size -> staged
                    rows (derive). Covers the range in as many requests as the node accepts.
    commit          staged rows + headers -> ONE transaction (store): raw rows, derived
                    state, reorg window, and the checkpoint, moved by `checkpoint.advanced`
                    and fenced against the position the batch was fetched on.
    follow_step     position -> fetch -> link check -> commit; at the tip, a reorg check.

Idempotent: committing a range twice writes nothing the second time, so recovering from
any error means running the work again. The drivers (follow, backfill) only schedule it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum

import structlog

from indexer import metrics
from indexer.chain import (
    BlockRef,
    Checkpoint,
    Event,
    Position,
    Quarantined,
    RawLog,
    TrackedContract,
)
from indexer.decode import decode
from indexer.derive import StagedRows, stage_rows
from indexer.errors import MissingHeaders, RangeTooLarge
from indexer.ledger import Discrepancy, LedgerEntry, ledger_of
from indexer.ranges import RangePlanner
from indexer.registry import Registry, children_of
from indexer.reorg import find_fork
from indexer.source import ChainSource
from indexer.store.control import Fence, Identity
from indexer.store.state import Batch, Committed, Store
from indexer.tables import QUARANTINE

log = structlog.get_logger("step")


class Outcome(StrEnum):
    PROGRESSED = "progressed"
    IDLE = "idle"  # at the head, nothing new
    WAITING = "waiting"  # the node is behind what we indexed; wait it out
    REORG = "reorg"


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Outcome
    head: int
    checkpoint: Checkpoint | None = None  # as committed after the step
    checkpoint_time: int | None = None  # the checkpoint block's timestamp, when known
    from_block: int = 0
    to_block: int = 0
    n_logs: int = 0
    new_rows: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Pipeline:
    """What the unit of work needs; one per chain and process."""

    source: ChainSource
    store: Store
    factory: TrackedContract
    planner: RangePlanner
    reorg_window: int
    confirmations: int = 0
    fence: Fence | None = None  # set while this process leads: every commit carries it
    unrecorded: Identity | None = None  # a new index's identity, recorded before it writes
    # Indexing work done in this process (a committed range, a range of the factory's
    # logs read): the watchdog's sign of progress when the checkpoint cannot move yet.
    progress: int = 0
    # Transactions in flight: a stop waits for them; anything else is cancelled at once.
    writing: int = 0

    def registry(self, position: Position) -> Registry:
        """The factory and every child the index has committed."""
        return Registry(self.factory, position.contracts)

    @contextmanager
    def writing_transaction(self) -> Iterator[None]:
        """Around every write transaction: a stop waits for those in flight (`writing`)."""
        self.writing += 1
        try:
            yield
        finally:
            self.writing -= 1


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated range decoded into staged rows: everything a commit needs. The logs
    are not kept, which keeps ranges waiting for the writer small."""

    from_block: int
    to_block: int
    headers: dict[int, BlockRef]
    n_logs: int
    staged: StagedRows
    ledger: list[LedgerEntry]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A fetched range's events, decoded, with the headers that vouch for them."""

    from_block: int
    to_block: int
    headers: dict[int, BlockRef]
    items: list[Event | Quarantined]  # in chain order


async def fetch_prepared(
    p: Pipeline, registry: Registry, start: int, end: int, *, head: int
) -> list[Prepared]:
    """[start, end] as prepared batches in chain order, each of about the planner's target
    size. The registry learns the children deployed inside the range."""
    parts: list[Prepared] = []
    while start <= end:
        stop = p.planner.end_for(start, end)
        try:
            decoded = await _fetch_decoded(
                p, registry, start, stop, all_headers=stop > head - p.reorg_window
            )
        except RangeTooLarge as e:
            p.planner.refused(e, start=start, end=stop)
            metrics.GETLOGS_SPLITS.inc()
            continue
        p.planner.succeeded(blocks=stop - start + 1, logs=len(decoded.items))
        parts += [prepare(part, p.store.chain_id) for part in split(decoded, p.planner.target_logs)]
        start = stop + 1
    return parts


async def _fetch_decoded(
    p: Pipeline, registry: Registry, start: int, end: int, *, all_headers: bool
) -> Decoded:
    """Fetch and decode the range; children the factory deploys inside it are fetched from
    their creation block on, in the same step, so no event of theirs is missed."""
    fetched = await p.source.fetch(
        start, end, registry.addresses(up_to=end), all_headers=all_headers
    )
    headers = dict(fetched.headers)
    items, deployments = decode_tracked(fetched.logs, registry)
    while new := registry.new(children_of(deployments)):
        registry.add(new)
        more = await p.source.fetch(min(c.since_block for c in new), end, [c.address for c in new])
        headers.update(more.headers)
        items = _merged(items, decode_tracked(more.logs, registry)[0])
    return Decoded(start, end, headers, items)


def decode_tracked(
    logs: Iterable[RawLog], registry: Registry
) -> tuple[list[Event | Quarantined], list[Event | Quarantined]]:
    """Each log of a tracked contract, from its creation block on, decoded once; and,
    apart, those of the factory (the deployments)."""
    started = time.perf_counter()
    items: list[Event | Quarantined] = []
    deployments: list[Event | Quarantined] = []
    factory = registry.factory.address
    for raw in logs:
        contract = registry.get(raw.address)
        if contract is not None and raw.block_number >= contract.since_block:
            item = decode(raw, contract)
            if item is not None:
                items.append(item)
                if raw.address == factory:
                    deployments.append(item)
    metrics.TIME_SPENT.labels("decode").inc(time.perf_counter() - started)
    return items, deployments


def _merged(
    first: list[Event | Quarantined], second: list[Event | Quarantined]
) -> list[Event | Quarantined]:
    seen = {(i.log.block_number, i.log.log_index) for i in first}
    extra = [i for i in second if (i.log.block_number, i.log.log_index) not in seen]
    return sorted([*first, *extra], key=lambda i: (i.log.block_number, i.log.log_index))


def split(found: Decoded, max_logs: int) -> list[Decoded]:
    """Cut an over-full range at block boundaries into ranges of about `max_logs` events,
    so one transaction stays bounded however dense the blocks are."""
    items = found.items
    if len(items) <= max_logs:
        return [found]
    parts: list[Decoded] = []
    start, first = found.from_block, 0
    while first < len(items):
        last = min(first + max_logs, len(items)) - 1
        end_block = items[last].log.block_number
        while last + 1 < len(items) and items[last + 1].log.block_number == end_block:
            last += 1
        if last + 1 == len(items):
            end_block = found.to_block
        headers = {n: h for n, h in found.headers.items() if start <= n <= end_block}
        parts.append(Decoded(start, end_block, headers, items[first : last + 1]))
        start, first = end_block + 1, last + 1
    return parts


def prepare(decoded: Decoded, chain_id: int) -> Prepared:
    started = time.perf_counter()
    staged = stage_rows(chain_id, decoded.items, decoded.headers)
    entries = ledger_of(item.log for item in decoded.items)
    metrics.TIME_SPENT.labels("decode").inc(time.perf_counter() - started)
    return Prepared(
        from_block=decoded.from_block,
        to_block=decoded.to_block,
        headers=decoded.headers,
        n_logs=len(decoded.items),
        staged=staged,
        ledger=entries,
    )


@dataclass(slots=True)
class Discovery:
    """The children the factory deployed up to `next_block - 1`, found in ranges sized
    like any other but by their own planner (factory logs are sparse). Kept across
    retries: an error resumes discovery where it stopped, never at its start."""

    registry: Registry
    next_block: int
    planner: RangePlanner

    @classmethod
    def after(cls, p: Pipeline, position: Position) -> Discovery:
        """Children at or below the checkpoint are committed with it: discovery starts
        above it (at the factory's deployment block for a new index)."""
        start = p.factory.since_block
        if position.checkpoint is not None:
            start = max(start, position.checkpoint.number + 1)
        return cls(p.registry(position), start, replace(p.planner))

    async def run(self, p: Pipeline, *, until: int) -> Registry:
        """Read the factory's logs up to `until`; the registry then knows every child."""
        while self.next_block <= until:
            start = self.next_block
            end = self.planner.end_for(start, until)
            try:
                fetched = await p.source.fetch(start, end, [p.factory.address])
            except RangeTooLarge as e:
                self.planner.refused(e, start=start, end=end)
                continue
            self.planner.succeeded(blocks=end - start + 1, logs=len(fetched.logs))
            self.registry.add(children_of(decode_tracked(fetched.logs, self.registry)[1]))
            self.next_block = end + 1
            p.progress += 1
        return self.registry


async def commit(
    p: Pipeline,
    prepared: Prepared,
    *,
    head: int,
    expected: Position | None,
    durable: bool,
    heal: Discrepancy | None = None,
) -> Committed:
    """Commit a prepared range in one transaction. `expected` fences it: refused with
    IndexMoved when another writer moved the index since it was read. Blocks with stored
    rows but no header in the batch are fetched and the commit is tried once more. With
    `heal`, the one block the audit found wrong is replaced by what the chain holds."""
    headers = prepared.headers
    for attempt in (1, 2):
        batch = Batch(
            from_block=prepared.from_block,
            to_block=prepared.to_block,
            staged=prepared.staged,
            headers=headers,
            window_from=head - p.reorg_window + 1,
            durable=durable,
            expected=expected,
            fence=p.fence,
            ledger=prepared.ledger,
            heal=heal,
        )
        try:
            with p.writing_transaction():
                committed = await p.store.commit(batch)
        except MissingHeaders as e:
            if attempt == 2:
                raise
            missing = e.numbers
        else:
            missing = frozenset()
        if missing:
            more = await p.source.headers(missing)
            headers = {**headers, **{n: h for n, h in more.items() if h is not None}}
            continue
        _count(committed, len(prepared.staged[QUARANTINE]))
        if heal is None:
            p.progress += 1
        return committed
    raise AssertionError("unreachable: the second attempt returns or raises")


def _count(committed: Committed, quarantined: int) -> None:
    for table, n in committed.new_rows.items():
        if n:
            metrics.EVENTS_INDEXED.labels(table).inc(n)
            metrics.ROWS_WRITTEN.inc(n)
    if quarantined:
        metrics.QUARANTINED_LOGS.inc(quarantined)


async def follow_step(p: Pipeline) -> StepResult:
    """Index the next range after the checkpoint, or detect a reorg at the tip."""
    position = await p.store.position()
    checkpoint = position.checkpoint
    assert checkpoint is not None, "the follower creates the checkpoint before stepping"
    head = await p.source.head()
    metrics.CHAIN_HEAD_BLOCK.set(head)
    target = head - p.confirmations
    if target <= checkpoint.number:
        return await _check_tip(p, checkpoint, head)
    start = checkpoint.number + 1
    end = p.planner.end_for(start, target)
    registry = p.registry(position)
    registry.publish()
    parts = await fetch_prepared(p, registry, start, end, head=head)
    if parts[0].headers[start].parent_hash != checkpoint.hash:
        return await _handle_reorg(p, checkpoint, head)
    new_rows: Counter[str] = Counter()
    for part in parts:
        committed = await commit(p, part, head=head, expected=position, durable=True)
        position = committed.position
        new_rows.update(committed.new_rows)
    last = parts[-1]
    return StepResult(
        Outcome.PROGRESSED,
        head,
        checkpoint=position.checkpoint,
        checkpoint_time=last.headers[last.to_block].timestamp if committed.checkpoint else None,
        from_block=start,
        to_block=last.to_block,
        n_logs=sum(part.n_logs for part in parts),
        new_rows=dict(new_rows),
    )


async def _check_tip(p: Pipeline, checkpoint: Checkpoint, head: int) -> StepResult:
    """Nothing new by number; a same-height reorg still shows as a different hash."""
    probe = min(checkpoint.number, head)
    if probe < 0:
        return StepResult(Outcome.IDLE, head, checkpoint=checkpoint)
    header = (await p.source.headers([probe]))[probe]
    if header is None:
        return StepResult(Outcome.WAITING, head, checkpoint=checkpoint)
    if probe == checkpoint.number:
        expected: bytes | None = checkpoint.hash
    else:
        expected = (await p.store.window(up_to=probe)).get(probe)
    if expected is not None and header.hash != expected:
        return await _handle_reorg(p, checkpoint, head)
    at_checkpoint = probe == checkpoint.number
    return StepResult(
        Outcome.IDLE if at_checkpoint else Outcome.WAITING,
        head,
        checkpoint=checkpoint,
        checkpoint_time=header.timestamp if at_checkpoint else None,
    )


async def _handle_reorg(p: Pipeline, checkpoint: Checkpoint, head: int) -> StepResult:
    """Walk back to the common ancestor and undo everything above it, unless another
    writer moved the checkpoint meanwhile (then the step runs again)."""
    fork = await find_fork(p.source, p.store, checkpoint)
    with p.writing_transaction():
        reverted = await p.store.rewind(
            fork, old_head=checkpoint.hash, expected=checkpoint, fence=p.fence
        )
    depth = checkpoint.number - fork.number
    metrics.REORGS.inc()
    metrics.REORG_DEPTH.observe(depth)
    log.warning(
        "reorg",
        depth=depth,
        fork_block=fork.number,
        old_head_hash="0x" + checkpoint.hash.hex(),
        fork_hash="0x" + fork.hash.hex(),
        blocks_reverted=reverted.blocks,
        events_reverted=reverted.raw_rows,
    )
    return StepResult(
        Outcome.REORG,
        head,
        checkpoint=fork,
        from_block=fork.number + 1,
        to_block=checkpoint.number,
    )
