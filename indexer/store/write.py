"""Write one batch: raw rows, derived state, reorg window and checkpoint in ONE transaction.

Rows are COPied (binary) into temporary staging tables, rows already stored
are dropped from the stage, and the rest is inserted; every derived statement
then reads the stage, so deltas apply only for raw events that are new here.
A transaction-level advisory lock per chain serialises writers (the daemon and
any backfills), which makes "drop what is stored, insert the rest" race-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from indexer.chain import ZERO_ADDRESS, BlockRef
from indexer.derive import StagedRows
from indexer.tables import (
    ARTIST_TOKENS,
    DIVIDEND_CLAIMS,
    MASTER_CONTRACTS,
    NFT_TRANSFERS,
    POSITION_DDL,
    RAW_TABLES,
    TABLE_NAMES,
    TOKEN_TRANSFERS,
    Column,
    RawTable,
    staged_name,
)

WRITE_LOCK = 0x4155_4449  # "AUDI": the per-chain writer lock's first key


def _stage_ddl(table: RawTable) -> str:
    columns = ", ".join(f"{staged_name(n, t)} {_staged_type(t)}" for n, t in table.columns)
    generated = "".join(
        f", {n} numeric generated always as ({n}_text::numeric) stored"
        for n, t in table.columns
        if t is Column.UINT256
    )
    return (
        f"create temp table if not exists stage_{table.name} "
        f"({POSITION_DDL}, {columns}{generated}) on commit delete rows"
    )


def _staged_type(kind: Column) -> str:
    return "text" if kind is Column.UINT256 else kind.value


# The zero address as a literal: the derived statements go to the server as one script
# (one round trip, no parameters), so the database never waits on this process between them.
_ZERO = f"'\\x{ZERO_ADDRESS.hex()}'::bytea"


def _insert_raw(table: RawTable) -> str:
    columns = ", ".join(table.stored_columns)
    return f"insert into {table.name} ({columns}) select {columns} from stage_{table.name}"


# Contracts count the transfers already stored (an out-of-order backfill may have
# indexed them first); this batch's own transfers are added by the deltas below.
_INSERT_MASTER_CONTRACTS = f"""
insert into master_contracts (
    chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
    master_id, nft_address, distributor_address, total_supply, minted_supply, burned_supply
)
select
    s.chain_id, s.block_number, s.block_hash, s.block_timestamp, s.tx_hash, s.log_index,
    s.master_id, s.nft_address, s.distributor_address, s.total_supply,
    (select count(*) from nft_transfers t
      where t.chain_id = s.chain_id and t.contract_address = s.nft_address
        and t.from_address = {_ZERO}),
    (select count(*) from nft_transfers t
      where t.chain_id = s.chain_id and t.contract_address = s.nft_address
        and t.to_address = {_ZERO})
from stage_master_contracts s
"""

_INSERT_ARTIST_TOKENS = f"""
insert into artist_tokens (
    chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
    artist_id, token_address, symbol, decimals, total_supply
)
select
    s.chain_id, s.block_number, s.block_hash, s.block_timestamp, s.tx_hash, s.log_index,
    s.artist_id, s.token_address, s.symbol, s.decimals,
    coalesce((select sum(case when t.from_address = {_ZERO} then t.value else -t.value end)
                from token_transfers t
               where t.chain_id = s.chain_id and t.token_address = s.token_address
                 and (t.from_address = {_ZERO} or t.to_address = {_ZERO})), 0)
from stage_artist_tokens s
"""

# An NFT's owner only moves forward in chain order (block, log index); its mint is the
# earliest mint seen. Either may arrive in any order (backfills of arbitrary ranges).
_UPSERT_OWNERS = f"""
insert into master_nfts as m (
    chain_id, contract_address, token_id, master_id, owner_address, is_burned,
    last_transfer_block, last_transfer_log_index, last_transfer_at, last_transfer_tx_hash,
    minted_block, minted_at, mint_tx_hash
)
select
    l.chain_id, l.contract_address, l.token_id, l.master_id, l.to_address,
    l.to_address = {_ZERO},
    l.block_number, l.log_index, l.block_timestamp, l.tx_hash,
    f.block_number, f.block_timestamp, f.tx_hash
from (
    select distinct on (contract_address, token_id) *
    from stage_nft_transfers
    order by contract_address, token_id, block_number desc, log_index desc
) l
left join (
    select distinct on (contract_address, token_id)
        contract_address, token_id, block_number, block_timestamp, tx_hash
    from stage_nft_transfers
    where from_address = {_ZERO}
    order by contract_address, token_id, block_number, log_index
) f on f.contract_address = l.contract_address and f.token_id = l.token_id
on conflict (chain_id, contract_address, token_id) do update set
    owner_address = case
        when (excluded.last_transfer_block, excluded.last_transfer_log_index)
           > (m.last_transfer_block, m.last_transfer_log_index)
        then excluded.owner_address
        else m.owner_address end,
    is_burned = case
        when (excluded.last_transfer_block, excluded.last_transfer_log_index)
           > (m.last_transfer_block, m.last_transfer_log_index)
        then excluded.is_burned
        else m.is_burned end,
    last_transfer_log_index = case
        when (excluded.last_transfer_block, excluded.last_transfer_log_index)
           > (m.last_transfer_block, m.last_transfer_log_index)
        then excluded.last_transfer_log_index
        else m.last_transfer_log_index end,
    last_transfer_at = case
        when (excluded.last_transfer_block, excluded.last_transfer_log_index)
           > (m.last_transfer_block, m.last_transfer_log_index)
        then excluded.last_transfer_at
        else m.last_transfer_at end,
    last_transfer_tx_hash = case
        when (excluded.last_transfer_block, excluded.last_transfer_log_index)
           > (m.last_transfer_block, m.last_transfer_log_index)
        then excluded.last_transfer_tx_hash
        else m.last_transfer_tx_hash end,
    last_transfer_block = greatest(m.last_transfer_block, excluded.last_transfer_block),
    minted_block = case
        when excluded.minted_block < coalesce(m.minted_block, excluded.minted_block + 1)
        then excluded.minted_block
        else m.minted_block end,
    minted_at = case
        when excluded.minted_block < coalesce(m.minted_block, excluded.minted_block + 1)
        then excluded.minted_at
        else m.minted_at end,
    mint_tx_hash = case
        when excluded.minted_block < coalesce(m.minted_block, excluded.minted_block + 1)
        then excluded.mint_tx_hash
        else m.mint_tx_hash end,
    updated_at = now()
"""

_SUPPLY_DELTAS = f"""
update master_contracts c
set minted_supply = c.minted_supply + d.minted,
    burned_supply = c.burned_supply + d.burned,
    updated_at = now()
from (
    select chain_id, contract_address,
           count(*) filter (where from_address = {_ZERO}) as minted,
           count(*) filter (where to_address = {_ZERO}) as burned
    from stage_nft_transfers
    group by chain_id, contract_address
) d
where c.chain_id = d.chain_id and c.nft_address = d.contract_address
  and (d.minted > 0 or d.burned > 0)
"""


_BALANCE_DELTAS = f"""
insert into token_holders as h (chain_id, token_address, holder_address, balance, updated_block)
select chain_id, token_address, holder, sum(delta), max(block_number)
from (
    select chain_id, token_address, to_address as holder, value as delta, block_number
    from stage_token_transfers where to_address <> {_ZERO}
    union all
    select chain_id, token_address, from_address, -value, block_number
    from stage_token_transfers where from_address <> {_ZERO}
) d
group by chain_id, token_address, holder
on conflict (chain_id, token_address, holder_address) do update set
    balance = h.balance + excluded.balance,
    updated_block = greatest(h.updated_block, excluded.updated_block),
    updated_at = now()
"""

_COIN_SUPPLY_DELTAS = f"""
update artist_tokens a
set total_supply = a.total_supply + d.delta, updated_at = now()
from (
    select chain_id, token_address,
           sum(case when from_address = {_ZERO} then value else -value end) as delta
    from stage_token_transfers
    where from_address = {_ZERO} or to_address = {_ZERO}
    group by chain_id, token_address
) d
where a.chain_id = d.chain_id and a.token_address = d.token_address
"""

_DIVIDEND_TOTALS = """
insert into dividend_totals as t (chain_id, distributor_address, dividend_id,
                                  claimed_amount, claims_count)
select chain_id, distributor_address, dividend_id, sum(amount), count(*)
from stage_dividend_claims
group by chain_id, distributor_address, dividend_id
on conflict (chain_id, distributor_address, dividend_id) do update set
    claimed_amount = t.claimed_amount + excluded.claimed_amount,
    claims_count = t.claims_count + excluded.claims_count,
    updated_at = now()
"""

_HOLDER_TOTALS = """
insert into dividend_holder_totals as t (chain_id, distributor_address, holder_address,
                                         claimed_amount, claims_count)
select chain_id, distributor_address, holder_address, sum(amount), count(*)
from stage_dividend_claims
group by chain_id, distributor_address, holder_address
on conflict (chain_id, distributor_address, holder_address) do update set
    claimed_amount = t.claimed_amount + excluded.claimed_amount,
    claims_count = t.claims_count + excluded.claims_count,
    updated_at = now()
"""


async def lock_chain(conn: asyncpg.Connection, chain_id: int, *, durable: bool) -> None:
    """Serialise writers of one chain until the transaction ends. A transaction that is
    not `durable` commits without waiting for its WAL to reach disk: a server crash may
    lose the last few such commits, but rows and checkpoint go together, so they are
    indexed again."""
    lock = f"select pg_advisory_xact_lock({WRITE_LOCK}, {int(chain_id) % 2**31})"
    await conn.execute(lock if durable else f"set local synchronous_commit = off; {lock}")


_STAGE_DDL = ";\n".join(_stage_ddl(table) for table in RAW_TABLES)


async def stage(conn: asyncpg.Connection, staged: StagedRows) -> None:
    """COPY the batch's rows into the (transaction-scoped) staging tables."""
    await conn.execute(_STAGE_DDL)
    for table, rows in staged:
        if rows:
            await conn.copy_records_to_table(
                f"stage_{table.name}",
                records=rows,
                columns=table.copy_columns,
            )


# Every stored raw row of the batch's transactions, found through the primary keys' prefix
# (chain_id, tx_hash): a batch holds thousands of logs but only tens of transactions.
# One index probe per (transaction, table) on the primary key's (chain_id, tx_hash)
# prefix, whatever the tables' size: a nested loop over the batch's transactions, never
# the `tx_hash = any(...)` scan a planner may turn parallel and sequential on big tables.
_STORED_BY_TX = (
    "select x.tx_hash, s.log_index, s.block_number, s.block_hash "
    "from unnest($2::bytea[]) as x(tx_hash) cross join lateral ("
    + " union all ".join(
        f"select log_index, block_number, block_hash from {table} "
        "where chain_id = $1 and tx_hash = x.tx_hash"
        for table in TABLE_NAMES
    )
    + ") as s"
)

# A contract address exists once on the canonical chain: stored under another block than
# this batch deployed it in, that block is from a lost branch.
_SAME_CONTRACT_ELSEWHERE = """
with deployed(address, block_hash) as (
    select nft_address, block_hash from stage_master_contracts
    union all select distributor_address, block_hash from stage_master_contracts
    union all select token_address, block_hash from stage_artist_tokens
)
select c.block_number, c.block_hash from master_contracts c
join deployed d on d.address in (c.nft_address, c.distributor_address)
where c.chain_id = $1 and c.block_hash <> d.block_hash
union
select t.block_number, t.block_hash from artist_tokens t
join deployed d on d.address = t.token_address
where t.chain_id = $1 and t.block_hash <> d.block_hash
"""


@dataclass(frozen=True, slots=True)
class Known:
    """What is already stored of a batch: rows to skip, and blocks the batch proves lost."""

    stored: frozenset[tuple[bytes, int]]  # (tx_hash, log_index) stored under the same block
    displaced: frozenset[tuple[int, bytes]]  # (block_number, block_hash) from a lost branch


async def known_rows(conn: asyncpg.Connection, chain_id: int, staged: StagedRows) -> Known:
    """Look the batch's transactions up. A transaction is in one canonical block: stored
    under another block than this batch found it in, that stored block is orphaned."""
    block_of = staged.block_of_tx()
    if not block_of:
        return Known(frozenset(), frozenset())
    stored: set[tuple[bytes, int]] = set()
    displaced: set[tuple[int, bytes]] = set()
    for r in await conn.fetch(_STORED_BY_TX, chain_id, list(block_of)):
        tx_hash, block_hash = bytes(r["tx_hash"]), bytes(r["block_hash"])
        if block_of[tx_hash] == block_hash:
            stored.add((tx_hash, r["log_index"]))
        else:
            displaced.add((r["block_number"], block_hash))
    return Known(frozenset(stored), frozenset(displaced))


async def displaced_contracts(conn: asyncpg.Connection, chain_id: int) -> set[tuple[int, bytes]]:
    """Blocks holding a deployment at an address this batch deploys elsewhere. After `stage`."""
    rows = await conn.fetch(_SAME_CONTRACT_ELSEWHERE, chain_id)
    return {(int(r[0]), bytes(r[1])) for r in rows}


async def write_rows(conn: asyncpg.Connection, staged: StagedRows) -> dict[str, int]:
    """Insert the staged rows (all new: `known_rows` filtered the stored ones out) and apply
    their derived changes, as one script; returns rows per table. Inside a transaction
    holding `lock_chain`, after `stage`."""
    statements = [
        statement
        for table, rows in staged
        if rows
        for statement in (
            _INSERTS.get(table.name) or _insert_raw(table),
            *_DERIVED.get(table.name, ()),
        )
    ]
    if statements:
        await conn.execute(";\n".join(statements))
    return staged.counts()


# The SQL function locks per master, like the backend's insert trigger, so an IPO row
# created while this batch is uncommitted still ends up with its mints.
_SYNC_STAGED_IPO_SUPPLY = (
    "select sync_master_ipo_minted_supply("
    "array(select distinct master_id from stage_nft_transfers))"
)

# Raw inserts that also derive columns; every other table copies its stage as it is.
_INSERTS = {
    MASTER_CONTRACTS.name: _INSERT_MASTER_CONTRACTS,
    ARTIST_TOKENS.name: _INSERT_ARTIST_TOKENS,
}
# Derived state each table's new rows change, in the order the statements run.
_DERIVED: dict[str, tuple[str, ...]] = {
    NFT_TRANSFERS.name: (_UPSERT_OWNERS, _SUPPLY_DELTAS, _SYNC_STAGED_IPO_SUPPLY),
    TOKEN_TRANSFERS.name: (_BALANCE_DELTAS, _COIN_SUPPLY_DELTAS),
    DIVIDEND_CLAIMS.name: (_DIVIDEND_TOTALS, _HOLDER_TOTALS),
}


async def sync_ipo_supply(conn: asyncpg.Connection, master_ids: Sequence[UUID]) -> None:
    """Keep master_ipos.minted_supply equal to what the chain minted for those masters."""
    if master_ids:
        await conn.execute("select sync_master_ipo_minted_supply($1::uuid[])", list(master_ids))


_UPSERT_WINDOW = """
insert into indexer_blocks (chain_id, block_number, block_hash, parent_hash, block_timestamp)
select $1, * from unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::timestamptz[])
on conflict (chain_id, block_number) do update set
    block_hash = excluded.block_hash,
    parent_hash = excluded.parent_hash,
    block_timestamp = excluded.block_timestamp
"""


async def remember_blocks(
    conn: asyncpg.Connection, chain_id: int, headers: Sequence[BlockRef], *, keep_from: int
) -> None:
    """Store headers for the reorg window and forget those below `keep_from`."""
    if headers:
        await conn.execute(
            _UPSERT_WINDOW,
            chain_id,
            [h.number for h in headers],
            [h.hash for h in headers],
            [h.parent_hash for h in headers],
            [datetime.fromtimestamp(h.timestamp, tz=UTC) for h in headers],
        )
    await conn.execute(
        "delete from indexer_blocks where chain_id = $1 and block_number < $2", chain_id, keep_from
    )
