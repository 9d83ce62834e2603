"""Undo what orphaned blocks wrote: raw rows go, derived state is recomputed.

Derived rows touched by an orphaned event are recomputed from the surviving
raw rows (not patched by inverse deltas), so that after a reorg the database
is identical to a from-scratch index of the canonical chain, down to which
holder rows exist. The node is never asked: orphaned blocks vanish from it,
so the stored block hash per raw row is what identifies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from indexer.chain import ZERO_ADDRESS
from indexer.store.coverage import cut_above
from indexer.store.write import sync_ipo_supply
from indexer.tables import TABLE_NAMES

_TEMP = """
create temp table if not exists orphaned (block_number bigint, block_hash bytea)
    on commit delete rows;
create temp table if not exists touched_nfts (contract_address bytea, token_id numeric)
    on commit delete rows;
create temp table if not exists touched_holders (token_address bytea, holder_address bytea)
    on commit delete rows;
create temp table if not exists touched_dividends (distributor_address bytea,
    dividend_id numeric, holder_address bytea) on commit delete rows;
"""

_ORPHANS_ABOVE = " union ".join(
    f"select block_number, block_hash from {t} where chain_id = $1 and block_number > $2"
    for t in TABLE_NAMES
)

_DELETE = """
delete from {table} t using orphaned o
where t.chain_id = $1 and t.block_number = o.block_number and t.block_hash = o.block_hash
"""

_ORPHANED_MASTERS = """
select m.master_id from master_contracts m
join orphaned o on m.block_number = o.block_number and m.block_hash = o.block_hash
where m.chain_id = $1
"""

_COLLECT_NFTS = """
insert into touched_nfts
select distinct t.contract_address, t.token_id from nft_transfers t
join orphaned o on t.block_number = o.block_number and t.block_hash = o.block_hash
where t.chain_id = $1
"""

_COLLECT_HOLDERS = """
insert into touched_holders
select distinct t.token_address, h.holder from token_transfers t
join orphaned o on t.block_number = o.block_number and t.block_hash = o.block_hash
cross join lateral (values (t.from_address), (t.to_address)) as h(holder)
where t.chain_id = $1 and h.holder <> $2
"""

_COLLECT_DIVIDENDS = """
insert into touched_dividends
select distinct t.distributor_address, t.dividend_id, t.holder_address from dividend_claims t
join orphaned o on t.block_number = o.block_number and t.block_hash = o.block_hash
where t.chain_id = $1
"""

_RECOMPUTE_OWNERS = """
update master_nfts m
set owner_address = l.to_address,
    is_burned = l.to_address = $2,
    last_transfer_block = l.block_number,
    last_transfer_log_index = l.log_index,
    last_transfer_at = l.block_timestamp,
    last_transfer_tx_hash = l.tx_hash,
    minted_block = f.block_number,
    minted_at = f.block_timestamp,
    mint_tx_hash = f.tx_hash,
    updated_at = now()
from touched_nfts x
cross join lateral (
    select t.to_address, t.block_number, t.log_index, t.block_timestamp, t.tx_hash
    from nft_transfers t
    where t.chain_id = $1 and t.contract_address = x.contract_address and t.token_id = x.token_id
    order by t.block_number desc, t.log_index desc limit 1
) l
left join lateral (
    select t.block_number, t.block_timestamp, t.tx_hash
    from nft_transfers t
    where t.chain_id = $1 and t.contract_address = x.contract_address
      and t.token_id = x.token_id and t.from_address = $2
    order by t.block_number, t.log_index limit 1
) f on true
where m.chain_id = $1 and m.contract_address = x.contract_address and m.token_id = x.token_id
"""

_DROP_UNOWNED = """
delete from master_nfts m using touched_nfts x
where m.chain_id = $1 and m.contract_address = x.contract_address and m.token_id = x.token_id
  and not exists (
    select 1 from nft_transfers t
    where t.chain_id = $1 and t.contract_address = x.contract_address and t.token_id = x.token_id)
"""

_RECOUNT_SUPPLY = """
update master_contracts c
set minted_supply = (select count(*) from nft_transfers t where t.chain_id = $1
                       and t.contract_address = c.nft_address and t.from_address = $2),
    burned_supply = (select count(*) from nft_transfers t where t.chain_id = $1
                       and t.contract_address = c.nft_address and t.to_address = $2),
    updated_at = now()
where c.chain_id = $1 and c.nft_address in (select contract_address from touched_nfts)
returning c.master_id
"""

# One pass over the touched tokens' transfers (a per-holder lookup would need two more
# indexes on the hot insert path); a self-transfer nets to zero as in the forward deltas.
_RECOMPUTE_BALANCES = """
update token_holders h
set balance = s.balance, updated_block = s.last_block, updated_at = now()
from (
    select t.token_address, d.holder, sum(d.delta) as balance, max(t.block_number) as last_block
    from token_transfers t
    cross join lateral (values (t.to_address, t.value), (t.from_address, -t.value))
        as d(holder, delta)
    join touched_holders x on x.token_address = t.token_address and x.holder_address = d.holder
    where t.chain_id = $1
      and t.token_address in (select token_address from touched_holders)
    group by t.token_address, d.holder
) s
where h.chain_id = $1 and h.token_address = s.token_address and h.holder_address = s.holder
"""

_DROP_UNTOUCHED_HOLDERS = """
delete from token_holders h using touched_holders x
where h.chain_id = $1 and h.token_address = x.token_address
  and h.holder_address = x.holder_address
  and not exists (
    select 1 from token_transfers t
    where t.chain_id = $1 and t.token_address = x.token_address
      and t.to_address = x.holder_address)
  and not exists (
    select 1 from token_transfers t
    where t.chain_id = $1 and t.token_address = x.token_address
      and t.from_address = x.holder_address)
"""

_RECOUNT_COIN_SUPPLY = """
update artist_tokens a
set total_supply = coalesce((
        select sum(case when t.from_address = $2 then t.value else -t.value end)
        from token_transfers t
        where t.chain_id = $1 and t.token_address = a.token_address
          and (t.from_address = $2 or t.to_address = $2)), 0),
    updated_at = now()
where a.chain_id = $1 and a.token_address in (select token_address from touched_holders)
"""

_RECOMPUTE_DIVIDEND_TOTALS = """
delete from dividend_totals d using touched_dividends x
where d.chain_id = $1 and d.distributor_address = x.distributor_address
  and d.dividend_id = x.dividend_id;
insert into dividend_totals (chain_id, distributor_address, dividend_id, claimed_amount,
                             claims_count)
select $1, c.distributor_address, c.dividend_id, sum(c.amount), count(*)
from dividend_claims c
where c.chain_id = $1 and (c.distributor_address, c.dividend_id) in (
    select distributor_address, dividend_id from touched_dividends)
group by c.distributor_address, c.dividend_id;
delete from dividend_holder_totals d using touched_dividends x
where d.chain_id = $1 and d.distributor_address = x.distributor_address
  and d.holder_address = x.holder_address;
insert into dividend_holder_totals (chain_id, distributor_address, holder_address,
                                    claimed_amount, claims_count)
select $1, c.distributor_address, c.holder_address, sum(c.amount), count(*)
from dividend_claims c
where c.chain_id = $1 and (c.distributor_address, c.holder_address) in (
    select distributor_address, holder_address from touched_dividends)
group by c.distributor_address, c.holder_address;
"""


# A revert of more than this many keys of one kind says "complete": false instead of listing
# them all: a listener then drops everything of the chain above the first removed block.
INVALIDATION_CAP = 10_000

# What the backend must drop from its caches, read before the rows go (the change log's
# `invalidates`, sql/migrations/0016): keys as 0x-hex and decimal text, sorted.
_INVALIDATES = """
with nfts as (select distinct contract_address, token_id from touched_nfts),
holders as (select distinct token_address, holder_address from touched_holders),
dividends as (
    select distributor_address, dividend_id from touched_dividends
    union
    select e.distributor_address, e.dividend_id from dividend_events e
    join orphaned o on e.block_number = o.block_number and e.block_hash = o.block_hash
    where e.chain_id = $1),
dividend_holders as (select distinct distributor_address, holder_address from touched_dividends),
contracts as (
    select a.address from master_contracts m
    join orphaned o on m.block_number = o.block_number and m.block_hash = o.block_hash
    cross join lateral (values (m.nft_address), (m.distributor_address)) as a(address)
    where m.chain_id = $1
    union
    select t.token_address from artist_tokens t
    join orphaned o on t.block_number = o.block_number and t.block_hash = o.block_hash
    where t.chain_id = $1),
masters as (
    select m.master_id from master_contracts m
    where m.chain_id = $1 and (m.nft_address in (select contract_address from nfts)
        or m.distributor_address in (select distributor_address from dividends)
        or m.nft_address in (select address from contracts)))
select json_build_object(
    'complete', greatest((select count(*) from nfts), (select count(*) from holders),
        (select count(*) from dividends), (select count(*) from dividend_holders),
        (select count(*) from contracts), (select count(*) from masters)) <= $2,
    'nfts', (select coalesce(json_agg(json_build_array('0x' || encode(a, 'hex'), b::text)
        order by a, b), '[]') from (select contract_address a, token_id b from nfts
        order by 1, 2 limit $2) x),
    'coinHolders', (select coalesce(json_agg(json_build_array('0x' || encode(a, 'hex'),
        '0x' || encode(b, 'hex')) order by a, b), '[]') from (select token_address a,
        holder_address b from holders order by 1, 2 limit $2) x),
    'dividends', (select coalesce(json_agg(json_build_array('0x' || encode(a, 'hex'),
        b::text) order by a, b), '[]') from (select distributor_address a, dividend_id b
        from dividends order by 1, 2 limit $2) x),
    'dividendHolders', (select coalesce(json_agg(json_build_array('0x' || encode(a, 'hex'),
        '0x' || encode(b, 'hex')) order by a, b), '[]') from (select distributor_address a,
        holder_address b from dividend_holders order by 1, 2 limit $2) x),
    'contracts', (select coalesce(json_agg('0x' || encode(address, 'hex') order by address),
        '[]') from (select address from contracts order by 1 limit $2) x),
    'masters', (select coalesce(json_agg(master_id order by master_id), '[]')
        from (select master_id from masters order by 1 limit $2) x))::text
"""


@dataclass(frozen=True, slots=True)
class Reverted:
    """What a revert removed, and (when it removed rows) what it made stale."""

    blocks: int
    raw_rows: int
    first_block: int | None = None  # the lowest and highest block that held removed rows
    last_block: int | None = None
    invalidates: str | None = None  # JSON (see _INVALIDATES); None when no row was removed


async def revert_above(conn: asyncpg.Connection, chain_id: int, fork_block: int) -> Reverted:
    """Remove everything indexed above `fork_block` (a reorg). Caller holds the chain lock."""
    await conn.execute(_TEMP)
    await conn.execute(f"insert into orphaned {_ORPHANS_ABOVE}", chain_id, fork_block)
    reverted = await _revert_orphaned(conn, chain_id)
    await conn.execute(
        "delete from indexer_blocks where chain_id = $1 and block_number > $2",
        chain_id,
        fork_block,
    )
    await cut_above(conn, chain_id, fork_block)
    return reverted


async def revert_blocks(
    conn: asyncpg.Connection, chain_id: int, blocks: list[tuple[int, bytes]]
) -> Reverted:
    """Remove rows stored under these (number, hash) pairs: blocks that are no longer canonical."""
    await conn.execute(_TEMP)
    await conn.executemany("insert into orphaned values ($1, $2)", blocks)
    return await _revert_orphaned(conn, chain_id)


async def _revert_orphaned(conn: asyncpg.Connection, chain_id: int) -> Reverted:
    blocks, first, last = await conn.fetchrow(
        "select count(*), min(block_number), max(block_number) from orphaned"
    ) or (0, None, None)
    await conn.execute(_COLLECT_NFTS, chain_id)
    await conn.execute(_COLLECT_HOLDERS, chain_id, ZERO_ADDRESS)
    await conn.execute(_COLLECT_DIVIDENDS, chain_id)
    invalidates = await conn.fetchval(_INVALIDATES, chain_id, INVALIDATION_CAP) if blocks else None
    orphaned_masters = await conn.fetch(_ORPHANED_MASTERS, chain_id)
    raw_rows = 0
    for table in TABLE_NAMES:
        status = await conn.execute(_DELETE.format(table=table), chain_id)
        raw_rows += int(status.split()[-1])
    await conn.execute(_DELETE.format(table="indexer_ledger"), chain_id)
    await conn.execute(_RECOMPUTE_OWNERS, chain_id, ZERO_ADDRESS)
    await conn.execute(_DROP_UNOWNED, chain_id)
    recounted = await conn.fetch(_RECOUNT_SUPPLY, chain_id, ZERO_ADDRESS)
    await sync_ipo_supply(conn, list({r["master_id"] for r in [*orphaned_masters, *recounted]}))
    await conn.execute(_RECOMPUTE_BALANCES, chain_id)
    await conn.execute(_DROP_UNTOUCHED_HOLDERS, chain_id)
    await conn.execute(_RECOUNT_COIN_SUPPLY, chain_id, ZERO_ADDRESS)
    await _recompute_dividends(conn, chain_id)
    if not raw_rows:
        return Reverted(blocks=int(blocks), raw_rows=0)
    return Reverted(int(blocks), raw_rows, first, last, invalidates)


async def _recompute_dividends(conn: asyncpg.Connection, chain_id: int) -> None:
    for statement in _RECOMPUTE_DIVIDEND_TOTALS.split(";"):
        if statement.strip():
            await conn.execute(statement, chain_id)
