"""Compare what the indexer stored with the chain itself (the oracle), snapshot every
indexed table for equality checks between two databases, and read what a run must leave
(the checkpoint, raw rows, duplicates). A reference is a clean backfill's snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from indexer.backfill import backfill
from indexer.devchain.oracle import ChainState, read_state
from indexer.devchain.rpc import RpcClient
from indexer.service import open_pipeline
from indexer.tables import QUARANTINE, TABLE_NAMES
from tests.helpers import pg
from tests.helpers.chain import Chain, settings_through
from tests.helpers.livechain import LiveChain
from tests.helpers.polling import eventually

ZERO = bytes(20)

# Raw tables keyed by (chain_id, tx_hash, log_index); a second row for one log under
# another key would be a duplicate the primary key cannot see.
RAW_EVENT_TABLES = tuple(t for t in TABLE_NAMES if t != QUARANTINE.name)

# Tables the indexer writes, with the columns that do not depend on when they were written.
INDEXED_TABLES: dict[str, str] = {
    "master_contracts": "chain_id, block_number, block_hash, tx_hash, log_index, master_id, "
    "nft_address, distributor_address, total_supply, minted_supply, burned_supply",
    "artist_tokens": "chain_id, block_number, block_hash, tx_hash, log_index, artist_id, "
    "token_address, symbol, decimals, total_supply",
    "nft_transfers": "chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index, "
    "contract_address, token_id, from_address, to_address",
    "token_transfers": "chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index, "
    "token_address, from_address, to_address, value",
    "dividend_events": "chain_id, block_number, block_hash, tx_hash, log_index, "
    "distributor_address, dividend_id, payer_address, token_address, amount, amount_per_share",
    "dividend_claims": "chain_id, block_number, block_hash, tx_hash, log_index, "
    "distributor_address, dividend_id, holder_address, token_id, amount",
    "master_nfts": "chain_id, contract_address, token_id, master_id, owner_address, is_burned, "
    "minted_block, mint_tx_hash, last_transfer_block, last_transfer_log_index, "
    "last_transfer_tx_hash",
    "token_holders": "chain_id, token_address, holder_address, balance, updated_block",
    "dividend_totals": "chain_id, distributor_address, dividend_id, claimed_amount, claims_count",
    "dividend_holder_totals": "chain_id, distributor_address, holder_address, claimed_amount, "
    "claims_count",
}


# Rows of one chain (`chain_id` given), or of every chain (None).
_OF_CHAIN = " where ($1::bigint is null or chain_id = $1)"


async def snapshot(url: str, chain_id: int | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every indexed table's rows (of one chain, when given), sorted, without write-time
    columns."""
    conn = await asyncpg.connect(url)
    try:
        result = {}
        for table, columns in INDEXED_TABLES.items():
            rows = await conn.fetch(
                f"select {columns} from {table}{_OF_CHAIN} order by {columns}", chain_id
            )
            result[table] = [tuple(r) for r in rows]
        return result
    finally:
        await conn.close()


def oracle(rpc_url: str, factory: bytes, from_block: int = 0) -> ChainState:
    with RpcClient(rpc_url) as rpc:
        return read_state(rpc, factory, from_block=from_block)


async def mismatches(url: str, state: ChainState, chain_id: int | None = None) -> list[str]:
    """Every way the database (its rows of `chain_id`, when given) disagrees with the
    chain; [] when it agrees."""
    conn = await asyncpg.connect(url)
    try:
        return [
            *await _owners(conn, state, chain_id),
            *await _balances(conn, state, chain_id),
            *await _claims(conn, state, chain_id),
            *await _supplies(conn, state, chain_id),
        ]
    finally:
        await conn.close()


async def _owners(conn: asyncpg.Connection, state: ChainState, chain_id: int | None) -> list[str]:
    rows = await conn.fetch(
        "select contract_address, token_id, owner_address from master_nfts" + _OF_CHAIN, chain_id
    )
    stored = {(bytes(r[0]), int(r[1])): bytes(r[2]) for r in rows}
    expected = {
        (nft, token): owner
        for nft, owners in state.nft_owners.items()
        for token, owner in owners.items()
    }
    for nft, burned in state.nft_burned.items():
        for token in burned:
            expected[(nft, token)] = ZERO
    return [
        f"owner of {k[0].hex()}#{k[1]}: db {stored.get(k, b'').hex()} "
        f"chain {expected.get(k, b'').hex()}"
        for k in stored.keys() | expected.keys()
        if stored.get(k) != expected.get(k)
    ]


async def _balances(conn: asyncpg.Connection, state: ChainState, chain_id: int | None) -> list[str]:
    rows = await conn.fetch(
        "select token_address, holder_address, balance from token_holders" + _OF_CHAIN, chain_id
    )
    stored = {(bytes(r[0]), bytes(r[1])): int(r[2]) for r in rows}
    expected = {
        (token, holder): balance
        for token, balances in state.coin_balances.items()
        for holder, balance in balances.items()
        if holder != ZERO
    }
    return [
        f"balance of {k[1].hex()} in {k[0].hex()}: db {stored.get(k)} chain {expected.get(k)}"
        for k in stored.keys() | expected.keys()
        if stored.get(k, 0) != expected.get(k, 0)
    ]


async def _claims(conn: asyncpg.Connection, state: ChainState, chain_id: int | None) -> list[str]:
    by_dividend = {
        (bytes(r[0]), int(r[1])): int(r[2])
        for r in await conn.fetch(
            "select distributor_address, dividend_id, claimed_amount from dividend_totals"
            + _OF_CHAIN,
            chain_id,
        )
    }
    by_holder = {
        (bytes(r[0]), bytes(r[1])): int(r[2])
        for r in await conn.fetch(
            "select distributor_address, holder_address, claimed_amount from dividend_holder_totals"
            + _OF_CHAIN,
            chain_id,
        )
    }
    problems = [
        f"claims of dividend {k}: db {by_dividend.get(k)} chain {v}"
        for k, v in state.claims_by_dividend.items()
        if by_dividend.get(k) != v
    ]
    problems += [
        f"claims of holder {k}: db {by_holder.get(k)} chain {v}"
        for k, v in state.claims_by_holder.items()
        if by_holder.get(k) != v
    ]
    if len(by_dividend) != len(state.claims_by_dividend):
        problems.append("dividend_totals has rows the chain does not")
    if len(by_holder) != len(state.claims_by_holder):
        problems.append("dividend_holder_totals has rows the chain does not")
    deposits = await conn.fetchval("select count(*) from dividend_events" + _OF_CHAIN, chain_id)
    if deposits != len(state.deposits):
        problems.append(f"deposits: db {deposits} chain {len(state.deposits)}")
    return problems


async def _supplies(conn: asyncpg.Connection, state: ChainState, chain_id: int | None) -> list[str]:
    minted = {
        bytes(r[0]): int(r[1])
        for r in await conn.fetch(
            "select nft_address, minted_supply from master_contracts" + _OF_CHAIN, chain_id
        )
    }
    supply = {
        bytes(r[0]): int(r[1])
        for r in await conn.fetch(
            "select token_address, total_supply from artist_tokens" + _OF_CHAIN, chain_id
        )
    }
    problems = [
        f"minted supply of {k.hex()}: db {minted.get(k)} chain {v}"
        for k, v in state.nft_minted.items()
        if minted.get(k) != v
    ]
    problems += [
        f"total supply of {k.hex()}: db {supply.get(k)} chain {v}"
        for k, v in state.coin_total_supply.items()
        if supply.get(k) != v
    ]
    if set(minted) != set(state.masters) or set(supply) != set(state.artist_coins):
        problems.append("the set of contracts differs from what the factory deployed")
    return problems


async def wait_for_match(url: str, rpc_url: str, factory: bytes, *, within: float) -> None:
    """Poll until the database agrees with the chain; fails the test at the deadline,
    naming the disagreements left."""
    problems: list[str] = []

    async def agrees() -> bool:
        problems[:] = await mismatches(url, oracle(rpc_url, factory))
        return not problems

    await eventually(
        agrees,
        within=within,
        what=lambda: f"the database to agree with the chain; it disagrees on {problems[:5]}",
        every=0.2,
    )


# What a run must leave: one reference, no duplicates, the checkpoint it reached.


async def backfill_to(database_url: str, chain: Chain, head: int, **extra: Any) -> None:
    """Index [factory block, head] straight from anvil (a clean reference)."""
    async with open_pipeline(settings_through(database_url, chain, **extra)) as p:
        await backfill(p, chain.factory_block, head, head=head, concurrency=2)


async def reference(url: str, chain: Chain, head: int) -> dict[str, list[tuple[Any, ...]]]:
    """What a clean backfill to `head` stores: every indexed table, sorted."""
    await backfill_to(url, chain, head)
    return await snapshot(url)


@contextmanager
def reference_database(
    live: LiveChain, databases: pg.Databases, template_db: str
) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """A clean backfill of the live chain into a database of its own, checked against the
    chain: the snapshot a faulty run must end equal to."""
    name = databases.create(template=template_db)
    try:
        url = databases.url(name)
        state = databases.run(reference(url, live.chain, live.head()))
        assert databases.run(mismatches(url, oracle(live.chain.url, live.chain.factory))) == []
        yield state
    finally:
        databases.drop(name)


async def duplicates(url: str) -> dict[str, int]:
    """Raw tables holding one log (block, log index) more than once; {} when none does."""
    conn = await asyncpg.connect(url)
    try:
        found = {}
        for table in RAW_EVENT_TABLES:
            n = await conn.fetchval(
                f"select count(*) - count(distinct (chain_id, block_number, log_index)) "
                f"from {table}"
            )
            if n:
                found[table] = n
        return found
    finally:
        await conn.close()


async def checkpoint(url: str, chain_id: int | None = None) -> tuple[int, bytes] | None:
    """The stored checkpoint (block, hash) of the chain (the only one, when not given),
    None before the first."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "select block_number, block_hash from indexer_checkpoints" + _OF_CHAIN, chain_id
        )
    finally:
        await conn.close()
    return None if row is None else (row[0], bytes(row[1]))


def ends_equal_to_the_chain_and_a_fresh_index(
    database_url: str,
    live: LiveChain,
    databases: pg.Databases,
    template_db: str,
    *,
    chain_id: int | None = None,
    within: float = 60,
) -> None:
    """Poll until the index (of `chain_id`, when several share the database) is at the
    head and agrees with the chain; then it must equal, table by table, a fresh backfill
    of the same chain into a database of its own."""
    head = live.head()
    problems: list[str] = []

    async def agrees() -> bool:
        state = oracle(live.chain.url, live.chain.factory)
        problems[:] = await mismatches(database_url, state, chain_id)
        at = await checkpoint(database_url, chain_id)
        if at is None or at[0] != head:
            problems.append(f"checkpoint {at}, head {head}")
        return not problems

    databases.run(
        eventually(
            agrees, within=within, every=0.2, what=lambda: f"the index to agree: {problems[:10]}"
        )
    )
    name = databases.create(template=template_db)
    try:
        fresh = databases.run(reference(databases.url(name), live.chain, head))
    finally:
        databases.drop(name)
    indexed = databases.run(snapshot(database_url, chain_id))
    for table, rows in fresh.items():
        assert indexed[table] == rows, table


_WRITTEN = "select (select max(block_number) from indexer_checkpoints), " + " + ".join(
    f"(select count(*) from {table})" for table in TABLE_NAMES
)


async def written(db: str | asyncpg.Pool) -> tuple[int | None, int]:
    """(checkpoint block, raw rows): what a step that must write nothing must leave alone."""
    if isinstance(db, asyncpg.Pool):
        row = await db.fetchrow(_WRITTEN)
    else:
        conn = await asyncpg.connect(db)
        try:
            row = await conn.fetchrow(_WRITTEN)
        finally:
            await conn.close()
    assert row is not None
    return row[0], int(row[1])
