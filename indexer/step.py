"""One idempotent unit of work: fetch a range, check it links to what is stored,
decode, and commit rows + derived state + checkpoint in one transaction.

The drivers (follow, backfill) only schedule steps; recovering from an error
means running the step again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from indexer import metrics
from indexer.chain import BlockRef, RawLog, TrackedContract
from indexer.decode import decode
from indexer.derive import StagedRows, stage_rows
from indexer.errors import RangeTooLarge
from indexer.ranges import RangePlanner
from indexer.registry import Registry, children_of
from indexer.reorg import find_fork
from indexer.source import ChainSource, Fetched
from indexer.store.state import Batch, Checkpoint, Committed, Mode, Store

log = structlog.get_logger("step")


class Outcome(StrEnum):
    PROGRESSED = "progressed"
    IDLE = "idle"  # at the head, nothing new
    WAITING = "waiting"  # the node is behind what we indexed; wait it out
    REORG = "reorg"
    RESIZED = "resized"  # the node refused the range; the planner shrank it


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Outcome
    head: int
    from_block: int = 0
    to_block: int = 0
    n_logs: int = 0
    new_rows: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Pipeline:
    """What a step needs; one per chain and process."""

    source: ChainSource
    store: Store
    registry: Registry
    planner: RangePlanner
    reorg_window: int
    confirmations: int = 0


async def follow_step(p: Pipeline) -> StepResult:
    """Index the next range after the checkpoint, or detect a reorg at the tip."""
    checkpoint = await p.store.checkpoint()
    assert checkpoint is not None, "the follower creates the checkpoint before stepping"
    head = await p.source.head()
    metrics.CHAIN_HEAD_BLOCK.set(head)
    target = head - p.confirmations
    if target <= checkpoint.number:
        return await _check_tip(p, checkpoint, head)
    start = checkpoint.number + 1
    end = p.planner.end_for(start, target)
    try:
        fetched = await fetch_discovering(p, start, end, all_headers=end > head - p.reorg_window)
    except RangeTooLarge as e:
        p.planner.refused(e, start=start, end=end)
        metrics.GETLOGS_SPLITS.inc()
        return StepResult(Outcome.RESIZED, head)
    if fetched.fetched.headers[start].parent_hash != checkpoint.hash:
        return await _handle_reorg(p, checkpoint, head)
    p.planner.succeeded(blocks=end - start + 1, logs=len(fetched.fetched.logs))
    prepared = prepare(fetched, p.store.chain_id)
    committed = await commit(p, prepared, mode=Mode.FOLLOW, head=head, based_on=checkpoint)
    return _progressed(head, prepared, committed)


@dataclass(frozen=True, slots=True)
class Discovered:
    fetched: Fetched
    registry: Registry  # the pipeline's registry plus children deployed in this range


async def fetch_discovering(p: Pipeline, start: int, end: int, *, all_headers: bool) -> Discovered:
    """Fetch the range; children the factory deploys inside it are fetched from their
    creation block on, in the same step, so no event of theirs is missed."""
    registry = p.registry.copy()
    fetched = await p.source.fetch(
        start, end, registry.addresses(up_to=end), all_headers=all_headers
    )
    logs, headers = list(fetched.logs), dict(fetched.headers)
    while True:
        factory_events = [
            decode(g, p.registry.factory) for g in logs if g.address == registry.factory.address
        ]
        new = [
            c
            for c in children_of(e for e in factory_events if e is not None)
            if registry.get(c.address) != c
        ]
        if not new:
            break
        registry.add(new)
        more = await p.source.fetch(min(c.since_block for c in new), end, [c.address for c in new])
        logs = _merge(logs, more.logs)
        headers.update(more.headers)
    merged = Fetched(from_block=start, to_block=end, logs=logs, headers=headers)
    return Discovered(fetched=merged, registry=registry)


def split(found: Discovered, max_logs: int) -> list[Discovered]:
    """Cut an over-full range at block boundaries into ranges of about `max_logs` logs,
    so one transaction stays bounded however dense the blocks are."""
    fetched = found.fetched
    if len(fetched.logs) <= max_logs:
        return [found]
    parts: list[Discovered] = []
    start, first = fetched.from_block, 0
    while first < len(fetched.logs):
        last = min(first + max_logs, len(fetched.logs)) - 1
        end_block = fetched.logs[last].block_number
        while last + 1 < len(fetched.logs) and fetched.logs[last + 1].block_number == end_block:
            last += 1
        if last + 1 == len(fetched.logs):
            end_block = fetched.to_block
        headers = {n: h for n, h in fetched.headers.items() if start <= n <= end_block}
        part = Fetched(start, end_block, fetched.logs[first : last + 1], headers)
        parts.append(Discovered(fetched=part, registry=found.registry))
        start, first = end_block + 1, last + 1
    return parts


def _merge(first: list[RawLog], second: list[RawLog]) -> list[RawLog]:
    seen = {(g.block_number, g.log_index) for g in first}
    extra = [g for g in second if (g.block_number, g.log_index) not in seen]
    return sorted([*first, *extra], key=lambda g: (g.block_number, g.log_index))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated range decoded into staged rows: everything a commit needs.

    Made as soon as a range arrives, so the backfill decodes the next range while the
    database writes this one. The logs are not kept, which keeps waiting ranges small."""

    from_block: int
    to_block: int
    headers: dict[int, BlockRef]
    n_logs: int
    staged: StagedRows
    children: list[TrackedContract]  # deployed in this range; followed once committed


def prepare(found: Discovered, chain_id: int) -> Prepared:
    """Decode every log of a tracked contract (from its creation block on) and stage it."""
    started = time.perf_counter()
    fetched = found.fetched
    decoded = []
    for raw in fetched.logs:
        contract = found.registry.get(raw.address)
        if contract is not None and raw.block_number >= contract.since_block:
            item = decode(raw, contract)
            if item is not None:
                decoded.append(item)
    staged = stage_rows(chain_id, decoded, fetched.headers)
    metrics.TIME_SPENT.labels("decode").inc(time.perf_counter() - started)
    return Prepared(
        from_block=fetched.from_block,
        to_block=fetched.to_block,
        headers=fetched.headers,
        n_logs=len(fetched.logs),
        staged=staged,
        children=children_of(decoded),
    )


async def commit(
    p: Pipeline, prepared: Prepared, *, mode: Mode, head: int, based_on: Checkpoint | None
) -> Committed:
    """Commit a prepared range; the registry learns its children only once they committed."""
    headers = dict(prepared.headers)
    stored = await p.store.stored_blocks(prepared.from_block, prepared.to_block)
    missing = stored.keys() - headers.keys()
    if missing:
        more = await p.source.headers(missing)
        headers.update({n: h for n, h in more.items() if h is not None})
    batch = Batch(
        mode=mode,
        from_block=prepared.from_block,
        to_block=prepared.to_block,
        staged=prepared.staged,
        headers=headers,
        window_from=head - p.reorg_window + 1,
        based_on=based_on,
    )
    committed = await p.store.commit(batch)
    p.registry.add(prepared.children)
    _count(committed, len(prepared.staged.quarantine))
    return committed


def _count(committed: Committed, quarantined: int) -> None:
    for table, n in committed.new_rows.items():
        if n:
            metrics.EVENTS_INDEXED.labels(table).inc(n)
            metrics.ROWS_WRITTEN.inc(n)
    if quarantined:
        metrics.QUARANTINED_LOGS.inc(quarantined)


def _progressed(head: int, prepared: Prepared, committed: Committed) -> StepResult:
    return StepResult(
        Outcome.PROGRESSED,
        head,
        from_block=prepared.from_block,
        to_block=prepared.to_block,
        n_logs=prepared.n_logs,
        new_rows=committed.new_rows,
    )


async def _check_tip(p: Pipeline, checkpoint: Checkpoint, head: int) -> StepResult:
    """Nothing new by number; a same-height reorg still shows as a different hash."""
    probe = min(checkpoint.number, head)
    if probe < 0:
        return StepResult(Outcome.IDLE, head)
    header = (await p.source.headers([probe]))[probe]
    if header is None:
        return StepResult(Outcome.WAITING, head)
    if probe == checkpoint.number:
        expected: bytes | None = checkpoint.hash
    else:
        expected = (await p.store.window(up_to=probe)).get(probe)
    if expected is not None and header.hash != expected:
        return await _handle_reorg(p, checkpoint, head)
    return StepResult(Outcome.IDLE if probe == checkpoint.number else Outcome.WAITING, head)


async def _handle_reorg(p: Pipeline, checkpoint: Checkpoint, head: int) -> StepResult:
    """Walk back to the common ancestor, undo everything above it, reload the registry."""
    fork = await find_fork(p.source, p.store, checkpoint)
    reverted = await p.store.rewind(fork, old_head=checkpoint.hash)
    p.registry.replace(await p.store.tracked_contracts())
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
    return StepResult(Outcome.REORG, head, from_block=fork.number + 1, to_block=checkpoint.number)
