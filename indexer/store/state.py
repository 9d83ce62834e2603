"""The Store: the only object the pipeline uses to talk to PostgreSQL.

Checkpoint and rows commit together: a crash at any instant leaves the
database at a batch boundary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import asyncpg

from indexer import metrics
from indexer.chain import BlockRef, ContractKind, TrackedContract
from indexer.derive import StagedRows
from indexer.errors import InconsistentResponse, Retryable
from indexer.store.db import connection, database_errors
from indexer.store.notify import notify_batch, notify_reorg
from indexer.store.revert import RAW_TABLES, Reverted, revert_above, revert_blocks
from indexer.store.write import (
    displaced_contracts,
    known_rows,
    lock_chain,
    remember_blocks,
    stage,
    write_rows,
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything up to and including this block is indexed, and this is its hash."""

    number: int
    hash: bytes


class Mode(StrEnum):
    FOLLOW = "follow"
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class Batch:
    """One step's worth of validated, decoded data, ready to commit."""

    mode: Mode
    from_block: int
    to_block: int
    staged: StagedRows
    headers: dict[int, BlockRef]
    window_from: int  # headers at or above this number belong in the reorg window
    based_on: Checkpoint | None  # the checkpoint the follower fetched against


@dataclass(frozen=True, slots=True)
class Committed:
    new_rows: dict[str, int]
    checkpoint: Checkpoint | None
    reverted: Reverted | None


_STORED_BLOCKS = " union ".join(
    f"select block_number, block_hash from {t} "
    "where chain_id = $1 and block_number between $2 and $3"
    for t in RAW_TABLES
)

_TRACKED = """
select nft_address as address, 'master_nft' as kind, block_number, master_id as owner_id
from master_contracts where chain_id = $1
union all
select distributor_address, 'distributor', block_number, master_id
from master_contracts where chain_id = $1
union all
select token_address, 'artist_coin', block_number, artist_id
from artist_tokens where chain_id = $1
"""

_SET_CHECKPOINT = """
insert into indexer_checkpoints (chain_id, block_number, block_hash)
values ($1, $2, $3)
on conflict (chain_id) do update set
    block_number = excluded.block_number, block_hash = excluded.block_hash, updated_at = now()
"""


class Store:
    """PostgreSQL access for one chain."""

    def __init__(self, pool: asyncpg.Pool, chain_id: int, *, reorg_window: int) -> None:
        self.pool = pool
        self.chain_id = chain_id
        self.reorg_window = reorg_window

    async def checkpoint(self) -> Checkpoint | None:
        async with database_errors("reading the checkpoint"):
            row = await self.pool.fetchrow(
                "select block_number, block_hash from indexer_checkpoints where chain_id = $1",
                self.chain_id,
            )
        return Checkpoint(row["block_number"], bytes(row["block_hash"])) if row else None

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

    async def block_timestamp(self, number: int) -> int | None:
        async with database_errors("reading a block timestamp"):
            value = await self.pool.fetchval(
                "select extract(epoch from block_timestamp)::bigint from indexer_blocks "
                "where chain_id = $1 and block_number = $2",
                self.chain_id,
                number,
            )
        return int(value) if value is not None else None

    async def tracked_contracts(self) -> list[TrackedContract]:
        async with database_errors("reading tracked contracts"):
            rows = await self.pool.fetch(_TRACKED, self.chain_id)
        return [
            TrackedContract(
                address=bytes(r["address"]),
                kind=ContractKind(r["kind"]),
                since_block=r["block_number"],
                owner_id=UUID(str(r["owner_id"])),
            )
            for r in rows
        ]

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

    async def stored_blocks(self, from_block: int, to_block: int) -> dict[int, set[bytes]]:
        """Block hashes under which rows in the range are stored (normally one per block)."""
        async with database_errors("reading stored block hashes"):
            rows = await self.pool.fetch(_STORED_BLOCKS, self.chain_id, from_block, to_block)
        found: dict[int, set[bytes]] = {}
        for r in rows:
            found.setdefault(r["block_number"], set()).add(bytes(r["block_hash"]))
        return found

    async def commit(self, batch: Batch) -> Committed:
        """Write the batch, its derived state, window and checkpoint in one transaction.

        Rows stored under a hash that is no longer canonical are reverted first.
        On any error nothing of the batch is visible."""
        started = time.perf_counter()
        async with (
            database_errors(f"writing blocks {batch.from_block}..{batch.to_block}"),
            connection(self.pool) as conn,
            conn.transaction(),
        ):
            await lock_chain(conn, self.chain_id, bulk=batch.mode is Mode.BACKFILL)
            result = await self._commit_locked(conn, batch)
        elapsed = time.perf_counter() - started
        metrics.DB_WRITE_DURATION.observe(elapsed)
        metrics.TIME_SPENT.labels("database").inc(elapsed)
        return result

    async def _commit_locked(self, conn: asyncpg.Connection, batch: Batch) -> Committed:
        stored = await self._checkpoint_locked(conn)
        if batch.mode is Mode.FOLLOW and stored != batch.based_on:
            raise Retryable("the checkpoint moved while the batch was fetched")
        known = await known_rows(conn, self.chain_id, batch.staged)
        fresh = batch.staged.without(known.stored)
        await stage(conn, fresh)
        stale = await self._stale_in_range(conn, batch) | known.displaced
        if fresh.master_contracts or fresh.artist_tokens:
            stale |= await displaced_contracts(conn, self.chain_id)
        reverted = await revert_blocks(conn, self.chain_id, sorted(stale)) if stale else None
        new_rows = await write_rows(conn, fresh)
        checkpoint = _advanced(stored, batch)
        if checkpoint is not None:
            window = {n: h for n, h in batch.headers.items() if n >= batch.window_from}
            window[batch.to_block] = batch.headers[batch.to_block]
            await remember_blocks(
                conn,
                self.chain_id,
                [window[n] for n in sorted(window)],
                keep_from=checkpoint.number - self.reorg_window,
            )
            await conn.execute(_SET_CHECKPOINT, self.chain_id, checkpoint.number, checkpoint.hash)
        await notify_batch(
            conn,
            new_nft_transfers=new_rows["nft_transfers"],
            from_block=batch.from_block,
            to_block=batch.to_block,
        )
        return Committed(new_rows=new_rows, checkpoint=checkpoint, reverted=reverted)

    async def _checkpoint_locked(self, conn: asyncpg.Connection) -> Checkpoint | None:
        row = await conn.fetchrow(
            "select block_number, block_hash from indexer_checkpoints where chain_id = $1",
            self.chain_id,
        )
        return Checkpoint(row["block_number"], bytes(row["block_hash"])) if row else None

    async def _stale_in_range(
        self, conn: asyncpg.Connection, batch: Batch
    ) -> set[tuple[int, bytes]]:
        """Rows in the range stored under another hash than the node's are from a lost branch."""
        rows = await conn.fetch(_STORED_BLOCKS, self.chain_id, batch.from_block, batch.to_block)
        stale: set[tuple[int, bytes]] = set()
        for r in rows:
            number, stored_hash = r["block_number"], bytes(r["block_hash"])
            header = batch.headers.get(number)
            if header is None:
                raise InconsistentResponse(
                    f"block {number} has stored rows but the node returned no logs for it"
                )
            if header.hash != stored_hash:
                stale.add((number, stored_hash))
        return stale

    async def rewind(self, fork: Checkpoint, *, old_head: bytes | None) -> Reverted:
        """Undo everything above `fork` and move the checkpoint there (reorg or operator)."""
        async with (
            database_errors(f"rewinding to block {fork.number}"),
            connection(self.pool) as conn,
            conn.transaction(),
        ):
            await lock_chain(conn, self.chain_id)
            stored = await self._checkpoint_locked(conn)
            reverted = await revert_above(conn, self.chain_id, fork.number)
            await conn.execute(_SET_CHECKPOINT, self.chain_id, fork.number, fork.hash)
            await conn.execute(
                "insert into indexer_reorgs (chain_id, fork_block, depth, old_head_hash, "
                "new_head_hash, events_reverted) values ($1, $2, $3, $4, $5, $6)",
                self.chain_id,
                fork.number,
                (stored.number - fork.number) if stored else 0,
                old_head,
                fork.hash,
                reverted.raw_rows,
            )
            await notify_reorg(
                conn,
                fork_block=fork.number,
                reverted_to_block=stored.number if stored else fork.number,
            )
        return reverted


def _advanced(stored: Checkpoint | None, batch: Batch) -> Checkpoint | None:
    """The new checkpoint, if this batch extends the stored one without a gap or a fork."""
    end = Checkpoint(batch.to_block, batch.headers[batch.to_block].hash)
    if batch.mode is Mode.FOLLOW:
        return end
    if stored is None or not batch.from_block - 1 <= stored.number < batch.to_block:
        return None
    first_new = batch.headers.get(stored.number + 1)
    if first_new is not None:
        return end if first_new.parent_hash == stored.hash else None
    return end if batch.window_from > batch.to_block else None
