"""The Store: the only object the pipeline uses to talk to PostgreSQL.

Checkpoint and rows commit together: a crash at any instant leaves the
database at a batch boundary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from indexer import metrics
from indexer.chain import BlockRef, Checkpoint, ContractKind, Position, TrackedContract
from indexer.checkpoint import advanced
from indexer.derive import StagedRows
from indexer.errors import IndexMoved, LeaseHeld, MissingHeaders
from indexer.ledger import Discrepancy, LedgerEntry
from indexer.store import coverage
from indexer.store.changes import Change, record_change
from indexer.store.control import Fence, check_fence
from indexer.store.db import connection, database_errors
from indexer.store.notify import notify_change, notify_rows
from indexer.store.revert import Reverted, revert_above, revert_blocks
from indexer.store.write import (
    displaced_contracts,
    known_rows,
    lock_chain,
    remember_blocks,
    stage,
    write_rows,
)
from indexer.tables import ARTIST_TOKENS, MASTER_CONTRACTS, TABLE_NAMES


@dataclass(frozen=True, slots=True)
class Batch:
    """One range's validated, decoded data, ready to commit."""

    from_block: int
    to_block: int
    staged: StagedRows
    headers: dict[int, BlockRef]
    window_from: int  # headers at or above this number belong in the reorg window
    durable: bool  # wait for the WAL to reach disk (the follower) or not (bulk work)
    # The position the batch was fetched against: the commit is refused (IndexMoved) if
    # the checkpoint, or a contract tracked below the batch, differs now. None: no fence.
    expected: Position | None = None
    # The leader's lease token: the commit is refused (LeaseLost) once it was taken over.
    fence: Fence | None = None
    # What the range holds per block, for the coverage ledger (blocks with logs only).
    ledger: Sequence[LedgerEntry] = ()
    # Healing one block the audit found wrong: every row stored in it is reverted first,
    # whatever its block hash, so that it ends holding exactly `staged`; refused
    # (IndexMoved) if its ledger entry changed since the audit read it.
    heal: Discrepancy | None = None


@dataclass(frozen=True, slots=True)
class AuditPosition:
    audited_to: int
    cuts: int


@dataclass(frozen=True, slots=True)
class Committed:
    new_rows: dict[str, int]
    checkpoint: Checkpoint | None  # the new checkpoint, if the batch moved it
    position: Position  # what the database holds now
    reverted: Reverted | None


_STORED_BLOCKS = " union ".join(
    f"select block_number, block_hash from {t} "
    "where chain_id = $1 and block_number between $2 and $3"
    for t in TABLE_NAMES
)

# The checkpoint and the tracked contracts in one statement, hence one snapshot.
_POSITION = """
select 'checkpoint' as kind, null::bytea as address, block_number, block_hash,
       null::uuid as owner_id
from indexer_checkpoints where chain_id = $1
union all
select 'master_nft', nft_address, block_number, null, master_id
from master_contracts where chain_id = $1
union all
select 'distributor', distributor_address, block_number, null, master_id
from master_contracts where chain_id = $1
union all
select 'artist_coin', token_address, block_number, null, artist_id
from artist_tokens where chain_id = $1
"""

_SET_CHECKPOINT = """
insert into indexer_checkpoints (chain_id, block_number, block_hash)
values ($1, $2, $3)
on conflict (chain_id) do update set
    block_number = excluded.block_number, block_hash = excluded.block_hash, updated_at = now()
"""


def _position(rows: list[asyncpg.Record]) -> Position:
    checkpoint: Checkpoint | None = None
    contracts: list[TrackedContract] = []
    for r in rows:
        if r["kind"] == "checkpoint":
            checkpoint = Checkpoint(r["block_number"], bytes(r["block_hash"]))
        else:
            contracts.append(
                TrackedContract(
                    address=bytes(r["address"]),
                    kind=ContractKind(r["kind"]),
                    since_block=r["block_number"],
                    owner_id=UUID(str(r["owner_id"])),
                )
            )
    return Position(checkpoint, tuple(contracts))


def _tracked_below(position: Position, block: int) -> set[bytes]:
    return {c.address for c in position.contracts if c.since_block < block}


class Store:
    """PostgreSQL access for one chain."""

    def __init__(self, pool: asyncpg.Pool, chain_id: int, *, reorg_window: int) -> None:
        self.pool = pool
        self.chain_id = chain_id
        self.reorg_window = reorg_window

    async def position(self) -> Position:
        """The checkpoint and the tracked contracts, as one consistent read."""
        async with database_errors("reading the checkpoint and tracked contracts"):
            return _position(await self.pool.fetch(_POSITION, self.chain_id))

    async def checkpoint(self) -> Checkpoint | None:
        return (await self.position()).checkpoint

    async def init_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Create the checkpoint if none exists (first start)."""
        async with database_errors("creating the checkpoint"):
            await self.pool.execute(
                "insert into indexer_checkpoints (chain_id, block_number, block_hash) "
                "values ($1, $2, $3) on conflict (chain_id) do nothing",
                self.chain_id,
                checkpoint.number,
                checkpoint.hash,
            )

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers."""
        async with database_errors("pinging the database"):
            await self.pool.fetchval("select 1")

    async def window(self, *, up_to: int) -> dict[int, bytes]:
        """Stored hashes of the recent blocks at or below `up_to`, newest first."""
        async with database_errors("reading the reorg window"):
            rows = await self.pool.fetch(
                "select block_number, block_hash from indexer_blocks "
                "where chain_id = $1 and block_number <= $2 order by block_number desc",
                self.chain_id,
                up_to,
            )
        return {r["block_number"]: bytes(r["block_hash"]) for r in rows}

    async def stored_blocks_below(self, number: int, *, limit: int) -> list[tuple[int, bytes]]:
        """The newest (number, hash) pairs stored at or below `number`, newest first."""
        async with database_errors("reading stored block hashes"):
            rows = await self.pool.fetch(
                f"select * from ({_STORED_BLOCKS} union select block_number, block_hash "
                "from indexer_blocks where chain_id = $1 and block_number between $2 and $3) b "
                "order by block_number desc limit $4",
                self.chain_id,
                0,
                number,
                limit,
            )
        return [(r["block_number"], bytes(r["block_hash"])) for r in rows]

    async def coverage(self) -> list[coverage.Span]:
        """The committed block ranges, in order."""
        async with database_errors("reading the coverage"), connection(self.pool) as conn:
            return await coverage.covered(conn, self.chain_id)

    async def ledger(self, from_block: int, to_block: int) -> dict[int, LedgerEntry]:
        """The ledger entries of [from_block, to_block] (blocks without one held no logs)."""
        async with database_errors("reading the ledger"), connection(self.pool) as conn:
            return await coverage.ledger(conn, self.chain_id, from_block, to_block)

    async def audit_position(self) -> AuditPosition:
        """The deep audit's position (every committed block up to it was audited), and
        how many times the index was cut back so far."""
        async with database_errors("reading the audit position"):
            row = await self.pool.fetchrow(
                "select audited_to, cuts from indexer_audit where chain_id = $1", self.chain_id
            )
        return AuditPosition(-1, 0) if row is None else AuditPosition(row[0], row[1])

    async def mark_audited(self, to_block: int, *, was: AuditPosition) -> None:
        """Move the deep audit's position, unless the index was cut back since `was` was
        read (the blocks above the cut were committed again: they are audited again)."""
        async with database_errors("storing the audit position"):
            await self.pool.execute(
                "insert into indexer_audit as a (chain_id, audited_to) values ($1, $2) "
                "on conflict (chain_id) do update set audited_to = $2, updated_at = now() "
                "where a.audited_to = $3 and a.cuts = $4",
                self.chain_id,
                to_block,
                was.audited_to,
                was.cuts,
            )

    async def commit(self, batch: Batch) -> Committed:
        """Write the batch, its derived state, window and checkpoint in one transaction.

        Rows stored under a hash that is no longer canonical are reverted first. The
        checkpoint moves by `checkpoint.advanced`, applied to the checkpoint read under
        the writer lock. On any error nothing of the batch is visible."""
        started = time.perf_counter()
        async with (
            database_errors(f"writing blocks {batch.from_block}..{batch.to_block}"),
            connection(self.pool) as conn,
            conn.transaction(),
        ):
            if batch.fence is not None:
                await check_fence(conn, self.chain_id, batch.fence)
            await lock_chain(conn, self.chain_id, durable=batch.durable)
            result = await self._commit_locked(conn, batch)
        elapsed = time.perf_counter() - started
        metrics.DB_WRITE_DURATION.observe(elapsed)
        metrics.TIME_SPENT.labels("database").inc(elapsed)
        return result

    async def _commit_locked(self, conn: asyncpg.Connection, batch: Batch) -> Committed:
        before = _position(await conn.fetch(_POSITION, self.chain_id))
        _check_fence(before, batch)
        if batch.heal is not None:
            await coverage.check_heal(conn, self.chain_id, batch.heal)
        stale = await self._stale_in_range(conn, batch)
        known = await known_rows(conn, self.chain_id, batch.staged)
        stale |= known.displaced
        # Healing, every row stored in the block goes (it is stale): all of the chain's are new.
        fresh = batch.staged if batch.heal else batch.staged.without(known.stored)
        await stage(conn, fresh)
        deploys = bool(fresh[MASTER_CONTRACTS] or fresh[ARTIST_TOKENS])
        if deploys:
            stale |= await displaced_contracts(conn, self.chain_id)
        reverted = await revert_blocks(conn, self.chain_id, sorted(stale)) if stale else None
        new_rows = await write_rows(conn, fresh)
        await coverage.record(conn, self.chain_id, batch.from_block, batch.to_block, batch.ledger)
        if batch.heal is not None:
            removed = reverted.raw_rows if reverted else 0
            added = sum(new_rows.values())
            await coverage.record_discrepancy(conn, self.chain_id, batch.heal, removed, added)
        checkpoint = advanced(
            before.checkpoint,
            from_block=batch.from_block,
            to_block=batch.to_block,
            headers=batch.headers,
            window_from=batch.window_from,
        )
        if checkpoint is not None:
            await self._move_checkpoint(conn, batch, checkpoint)
        change = Change(
            self.chain_id,
            "heal" if batch.heal else "batch",
            batch.from_block,
            batch.to_block,
            new_rows,
            reverted,
        )
        if change.changed:
            seq = await record_change(conn, change)
            await notify_rows(conn, change, seq)
            await notify_change(conn, change, seq, heal=batch.heal)
        if deploys or reverted:
            after = _position(await conn.fetch(_POSITION, self.chain_id))
        else:
            after = Position(checkpoint or before.checkpoint, before.contracts)
        return Committed(new_rows, checkpoint, after, reverted)

    async def skip_committed(
        self, expected: Checkpoint, to: BlockRef, *, fence: Fence | None
    ) -> bool:
        """Move the checkpoint from `expected` to `to` over blocks another writer (a
        backfill shard) has committed, so that the follower does not fetch them again.
        The caller takes `to` below the reorg window, where the chain no longer forks
        (the trust `checkpoint.advanced` gives blocks without logs there). Nothing moves
        unless, under the writer lock, the checkpoint is still `expected` and one
        committed range still holds every block up to `to`: True when it moved."""
        async with (
            database_errors(f"moving the checkpoint over committed blocks to {to.number}"),
            connection(self.pool) as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, self.chain_id, fence)
            await lock_chain(conn, self.chain_id, durable=True)
            now = _position(await conn.fetch(_POSITION, self.chain_id)).checkpoint
            if now != expected or not await coverage.holds(
                conn, self.chain_id, expected.number + 1, to.number
            ):
                return False
            await remember_blocks(
                conn, self.chain_id, [to], keep_from=to.number - self.reorg_window
            )
            await conn.execute(_SET_CHECKPOINT, self.chain_id, to.number, to.hash)
        return True

    async def _move_checkpoint(
        self, conn: asyncpg.Connection, batch: Batch, checkpoint: Checkpoint
    ) -> None:
        window = {n: h for n, h in batch.headers.items() if n >= batch.window_from}
        window[batch.to_block] = batch.headers[batch.to_block]
        await remember_blocks(
            conn,
            self.chain_id,
            [window[n] for n in sorted(window)],
            keep_from=checkpoint.number - self.reorg_window,
        )
        await conn.execute(_SET_CHECKPOINT, self.chain_id, checkpoint.number, checkpoint.hash)

    async def _stale_in_range(
        self, conn: asyncpg.Connection, batch: Batch
    ) -> set[tuple[int, bytes]]:
        """Rows in the range stored under another hash than the node's are from a lost
        branch. Rows in a block the batch has no header for raise MissingHeaders."""
        rows = await conn.fetch(_STORED_BLOCKS, self.chain_id, batch.from_block, batch.to_block)
        stale: set[tuple[int, bytes]] = set()
        missing: set[int] = set()
        for r in rows:
            number, stored_hash = r["block_number"], bytes(r["block_hash"])
            header = batch.headers.get(number)
            if batch.heal is not None:
                stale.add((number, stored_hash))
            elif header is None:
                missing.add(number)
            elif header.hash != stored_hash:
                stale.add((number, stored_hash))
        if missing:
            raise MissingHeaders(
                f"block {min(missing)} has stored rows but the node returned no logs for it",
                numbers=frozenset(missing),
            )
        return stale

    async def rewind(
        self,
        fork: Checkpoint,
        *,
        old_head: bytes | None,
        expected: Checkpoint | None = None,
        fence: Fence | None = None,
        cause: str = "chain",
    ) -> Reverted:
        """Undo everything above `fork` and move the checkpoint there (reorg or operator).

        With `expected`, refused (IndexMoved) unless the checkpoint is still that one: a
        follower never undoes what another writer committed after it looked. `cause` is
        "chain" (a reorg) or "operator" (the rewind command)."""
        async with (
            database_errors(f"rewinding to block {fork.number}"),
            connection(self.pool) as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, self.chain_id, fence)
            await lock_chain(conn, self.chain_id, durable=True)
            stored = _position(await conn.fetch(_POSITION, self.chain_id)).checkpoint
            if expected is not None and stored != expected:
                raise IndexMoved("the checkpoint moved while the reorg was being traced")
            reverted = await revert_above(conn, self.chain_id, fork.number)
            await conn.execute(_SET_CHECKPOINT, self.chain_id, fork.number, fork.hash)
            await conn.execute(
                "insert into indexer_reorgs (chain_id, fork_block, depth, old_head_hash, "
                "new_head_hash, events_reverted, cause) values ($1, $2, $3, $4, $5, $6, $7)",
                self.chain_id,
                fork.number,
                (stored.number - fork.number) if stored else 0,
                old_head,
                fork.hash,
                reverted.raw_rows,
                cause,
            )
            change = Change(
                self.chain_id,
                "rewind" if cause == "operator" else "reorg",
                fork.number + 1,
                max(fork.number + 1, stored.number if stored else 0),
                reverted=reverted,
            )
            await notify_change(conn, change, await record_change(conn, change))
        return reverted


_FORGOTTEN = (
    "indexer_checkpoints",
    "indexer_blocks",
    "indexer_coverage",
    "indexer_ledger",
    "indexer_audit",
    "indexer_leases",
    "indexer_identity",
)


async def forget_chain(pool: asyncpg.Pool, chain_id: int) -> Reverted:
    """Empty this chain's index (raw rows, derived state, checkpoint, window, identity and
    lease) in one transaction, so that it can be started afresh, e.g. on another
    factory. Refused while a replica holds an unexpired lease: stop every `run` first."""
    async with (
        database_errors(f"emptying the index of chain {chain_id}"),
        connection(pool) as conn,
        conn.transaction(),
    ):
        await lock_chain(conn, chain_id, durable=True)
        leader = await conn.fetchval(
            "select holder from indexer_leases where chain_id = $1 and expires_at > now()",
            chain_id,
        )
        if leader is not None:
            raise LeaseHeld(f"replica {leader} leads chain {chain_id}: stop every `run` first")
        reverted = await revert_above(conn, chain_id, -1)
        for table in _FORGOTTEN:
            await conn.execute(f"delete from {table} where chain_id = $1", chain_id)
        change = Change(chain_id, "forget", 0, reverted.last_block or 0, reverted=reverted)
        await notify_change(conn, change, await record_change(conn, change))
    return reverted


def _check_fence(now: Position, batch: Batch) -> None:
    """A batch fetched against a position commits only onto that position."""
    expected = batch.expected
    if expected is None:
        return
    if now.checkpoint != expected.checkpoint:
        raise IndexMoved("the checkpoint moved while the batch was fetched")
    if _tracked_below(now, batch.from_block) != _tracked_below(expected, batch.from_block):
        raise IndexMoved("the tracked contracts changed while the batch was fetched")
