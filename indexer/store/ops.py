"""What the operator commands ask of the database: status counts, verify's consistent
snapshot of the index, and the dashboards' view refreshes. Every query runs inside
`database_errors`, so a database fault is one clear error, never a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from indexer.chain import ZERO_ADDRESS
from indexer.store.db import connection, database_errors
from indexer.tables import TABLE_NAMES

VIEWS = ("artist_performance", "master_ipo_stats", "master_chain_stats", "artist_coin_stats")

_COUNTS = " union all ".join(
    f"select '{t}' as kind, count(*) as n from {t} where chain_id = $1" for t in TABLE_NAMES
)

_LAST_REORG = """
select detected_at, fork_block, depth, events_reverted, cause from indexer_reorgs
where chain_id = $1 order by id desc limit 1
"""


@dataclass(frozen=True, slots=True)
class LastReorg:
    detected_at: datetime
    fork_block: int
    depth: int
    events_reverted: int
    cause: str  # "chain" (a reorg) or "operator" (a rewind asked for)


async def event_counts(pool: asyncpg.Pool, chain_id: int) -> dict[str, int]:
    """Rows per raw table (exact counts)."""
    async with database_errors("counting indexed events"):
        rows = await pool.fetch(_COUNTS, chain_id)
    return {r["kind"]: r["n"] for r in rows}


async def last_reorg(pool: asyncpg.Pool, chain_id: int) -> LastReorg | None:
    async with database_errors("reading the last reorg"):
        row = await pool.fetchrow(_LAST_REORG, chain_id)
    return None if row is None else LastReorg(**dict(row))


@dataclass(frozen=True, slots=True)
class Discrepancies:
    by_kind: dict[str, int]
    last_block: int | None
    last_at: datetime | None


async def discrepancies(pool: asyncpg.Pool, chain_id: int) -> Discrepancies:
    """What the audit found and healed, by kind, and the latest one."""
    async with database_errors("reading the audit's discrepancies"):
        rows = await pool.fetch(
            "select kind, count(*) as n, max(detected_at) as at from indexer_discrepancies "
            "where chain_id = $1 group by kind order by kind",
            chain_id,
        )
        last = await pool.fetchrow(
            "select block_number, detected_at from indexer_discrepancies where chain_id = $1 "
            "order by id desc limit 1",
            chain_id,
        )
    return Discrepancies(
        {r["kind"]: r["n"] for r in rows},
        last["block_number"] if last else None,
        last["detected_at"] if last else None,
    )


async def refresh_views(pool: asyncpg.Pool) -> None:
    """REFRESH ... CONCURRENTLY each view (readers keep the old contents meanwhile)."""
    for view in VIEWS:
        async with database_errors(f"refreshing {view}"):
            await pool.execute(f"refresh materialized view concurrently {view}")


_STATE_BLOCK = """
select greatest(
    (select block_number from indexer_checkpoints where chain_id = $1),
    (select max(block_number) from nft_transfers where chain_id = $1),
    (select max(block_number) from token_transfers where chain_id = $1)
)
"""

_ROWS_PER_BLOCK = {
    table: f"select block_number, block_hash, count(*) as n from {table} "
    "where chain_id = $1 and block_number between $2 and $3 "
    "group by block_number, block_hash"
    for table in TABLE_NAMES
}

_WINDOW = """
select block_number, block_hash from indexer_blocks
where chain_id = $1 and block_number between $2 and $3
"""

_TOUCHED_NFTS = """
select distinct contract_address, token_id from nft_transfers
where chain_id = $1 and block_number between $2 and $3
"""

_TOUCHED_HOLDINGS = """
select distinct t.token_address, h.holder
from token_transfers t
cross join lateral (values (t.from_address), (t.to_address)) as h(holder)
where t.chain_id = $1 and t.block_number between $2 and $3 and h.holder <> $4
"""

_OWNERS = """
select n.contract_address, n.token_id, m.owner_address, m.is_burned
from unnest($2::bytea[], $3::numeric[]) as n(contract_address, token_id)
left join master_nfts m
    on m.chain_id = $1
    and m.contract_address = n.contract_address
    and m.token_id = n.token_id
"""

_BALANCES = """
select k.token_address, k.holder_address, h.balance
from unnest($2::bytea[], $3::bytea[]) as k(token_address, holder_address)
left join token_holders h
    on h.chain_id = $1
    and h.token_address = k.token_address
    and h.holder_address = k.holder_address
"""

Nft = tuple[bytes, int]  # (contract, token id)
Holding = tuple[bytes, bytes]  # (token contract, holder)
BlockRows = dict[tuple[int, bytes], int]  # (block, hash) -> rows


class Snapshot:
    """The index as one read-only, repeatable-read transaction sees it, so a writer
    committing meanwhile cannot make the stored side disagree with itself."""

    def __init__(self, conn: asyncpg.Connection, chain_id: int) -> None:
        self._conn = conn
        self._chain_id = chain_id

    async def _fetch(self, doing: str, query: str, *args: Any) -> list[asyncpg.Record]:
        async with database_errors(doing):
            return await self._conn.fetch(query, self._chain_id, *args)

    async def state_block(self) -> int | None:
        """The block the stored derived state stands for: the highest of the checkpoint
        and the last stored transfer (a backfill may be ahead of the checkpoint)."""
        async with database_errors("reading the indexed block"):
            value = await self._conn.fetchval(_STATE_BLOCK, self._chain_id)
        return None if value is None else int(value)

    async def rows_per_block(self, first: int, last: int) -> dict[str, BlockRows]:
        found: dict[str, BlockRows] = {}
        for table, query in _ROWS_PER_BLOCK.items():
            rows = await self._fetch(f"counting {table}", query, first, last)
            found[table] = {(r["block_number"], bytes(r["block_hash"])): r["n"] for r in rows}
        return found

    async def window(self, first: int, last: int) -> dict[int, bytes]:
        rows = await self._fetch("reading the reorg window", _WINDOW, first, last)
        return {r["block_number"]: bytes(r["block_hash"]) for r in rows}

    async def touched_nfts(self, first: int, last: int) -> set[Nft]:
        rows = await self._fetch("reading transferred NFTs", _TOUCHED_NFTS, first, last)
        return {(bytes(r["contract_address"]), int(r["token_id"])) for r in rows}

    async def touched_holdings(self, first: int, last: int) -> set[Holding]:
        rows = await self._fetch(
            "reading coin holders", _TOUCHED_HOLDINGS, first, last, ZERO_ADDRESS
        )
        return {(bytes(r["token_address"]), bytes(r["holder"])) for r in rows}

    async def owners(self, nfts: Sequence[Nft]) -> dict[Nft, tuple[bytes, bool] | None]:
        """Stored (owner, is_burned) per NFT; None where no master_nfts row exists."""
        rows = await self._fetch(
            "reading NFT owners", _OWNERS, [a for a, _ in nfts], [t for _, t in nfts]
        )
        return {
            (bytes(r["contract_address"]), int(r["token_id"])): None
            if r["owner_address"] is None
            else (bytes(r["owner_address"]), bool(r["is_burned"]))
            for r in rows
        }

    async def balances(self, holdings: Sequence[Holding]) -> dict[Holding, int]:
        """Stored balance per (token, holder); 0 where no token_holders row exists."""
        rows = await self._fetch(
            "reading coin balances", _BALANCES, [t for t, _ in holdings], [h for _, h in holdings]
        )
        return {
            (bytes(r["token_address"]), bytes(r["holder_address"])): int(r["balance"] or 0)
            for r in rows
        }


@asynccontextmanager
async def snapshot(pool: asyncpg.Pool, chain_id: int) -> AsyncIterator[Snapshot]:
    async with database_errors("opening a read-only snapshot"), connection(pool) as conn:
        transaction = conn.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        try:
            yield Snapshot(conn, chain_id)
        finally:
            await transaction.rollback()
