"""Real-time events for the backend, sent with NOTIFY inside the batch's transaction,
so listeners hear of exactly what committed (and nothing of what rolled back).

Channel `audifi_events`; each payload is one JSON object with a `type`:
`ipo.mint` {masterId, mintedSupply}, `nft.transfer` {nftId, contract, tokenId,
newOwner}, `coin.transfer` {token, from, to, value, blockNumber, txHash, logIndex}
(an ArtistCoin moved: the balances of `from` and `to` in token_holders changed),
`indexer.batch` {fromBlock, toBlock, nftTransfers, coinTransfers} instead of the
transfers of a kind when a batch moved more than `MAX_TRANSFER_NOTICES` (a backfill:
re-read the range), `indexer.reorg`
{forkBlock, revertedFromBlock, revertedToBlock}, and `indexer.discrepancy` {blockNumber,
kind, ledgerCount, chainCount, rowsRemoved, rowsAdded} when the audit healed a block the
node had answered wrongly (the block's rows changed: re-read what it holds).
"""

from __future__ import annotations

import asyncpg
import orjson

from indexer.ledger import Discrepancy

CHANNEL = "audifi_events"
MAX_TRANSFER_NOTICES = 500

_IPO_MINTS = """
select pg_notify($1, json_build_object(
    'type', 'ipo.mint', 'chainId', c.chain_id, 'masterId', c.master_id,
    'mintedSupply', sum(c.minted_supply)::text)::text)
from master_contracts c
where c.master_id in (select master_id from stage_nft_transfers where from_address = $2)
group by c.chain_id, c.master_id
"""

_NFT_TRANSFERS = """
select pg_notify($1, json_build_object(
    'type', 'nft.transfer', 'chainId', m.chain_id, 'nftId', m.id,
    'contract', '0x' || encode(m.contract_address, 'hex'), 'tokenId', m.token_id::text,
    'newOwner', '0x' || encode(m.owner_address, 'hex'))::text)
from master_nfts m
where (m.chain_id, m.contract_address, m.token_id) in (
    select chain_id, contract_address, token_id from stage_nft_transfers)
"""


_COIN_TRANSFERS = """
select pg_notify($1, json_build_object(
    'type', 'coin.transfer', 'chainId', s.chain_id,
    'token', '0x' || encode(s.token_address, 'hex'),
    'from', '0x' || encode(s.from_address, 'hex'), 'to', '0x' || encode(s.to_address, 'hex'),
    'value', s.value::text, 'blockNumber', s.block_number,
    'txHash', '0x' || encode(s.tx_hash, 'hex'), 'logIndex', s.log_index)::text)
from (select * from stage_token_transfers order by block_number, log_index) s
"""


async def notify_batch(
    conn: asyncpg.Connection,
    *,
    new_nft_transfers: int,
    new_coin_transfers: int,
    from_block: int,
    to_block: int,
) -> None:
    """Announce a batch's mints, owner changes and coin transfers. Runs inside the batch
    transaction, after the derived state is written."""
    if new_nft_transfers:
        await conn.execute(_IPO_MINTS, CHANNEL, bytes(20))
    if 0 < new_nft_transfers <= MAX_TRANSFER_NOTICES:
        await conn.execute(_NFT_TRANSFERS, CHANNEL)
    if 0 < new_coin_transfers <= MAX_TRANSFER_NOTICES:
        await conn.execute(_COIN_TRANSFERS, CHANNEL)
    if max(new_nft_transfers, new_coin_transfers) > MAX_TRANSFER_NOTICES:
        payload = {
            "type": "indexer.batch",
            "fromBlock": from_block,
            "toBlock": to_block,
            "nftTransfers": new_nft_transfers,
            "coinTransfers": new_coin_transfers,
        }
        await conn.execute("select pg_notify($1, $2)", CHANNEL, orjson.dumps(payload).decode())


async def notify_reorg(
    conn: asyncpg.Connection, *, fork_block: int, reverted_to_block: int
) -> None:
    payload = {
        "type": "indexer.reorg",
        "forkBlock": fork_block,
        "revertedFromBlock": fork_block + 1,
        "revertedToBlock": reverted_to_block,
    }
    await conn.execute("select pg_notify($1, $2)", CHANNEL, orjson.dumps(payload).decode())


async def notify_discrepancy(
    conn: asyncpg.Connection, found: Discrepancy, *, rows_removed: int, rows_added: int
) -> None:
    payload = {
        "type": "indexer.discrepancy",
        "blockNumber": found.block_number,
        "kind": found.kind,
        "ledgerCount": found.ledger.log_count if found.ledger else 0,
        "chainCount": found.chain.log_count if found.chain else 0,
        "rowsRemoved": rows_removed,
        "rowsAdded": rows_added,
    }
    await conn.execute("select pg_notify($1, $2)", CHANNEL, orjson.dumps(payload).decode())
