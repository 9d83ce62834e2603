"""Real-time events for the backend: NOTIFY on channel `audifi_events`, sent inside the
transaction of the change they announce, so listeners hear of exactly what committed.

NOTIFY is the wake-up; the change log (`indexer_changes`, store/changes.py) is the record.
Every payload is one JSON object with `v` (the payload version, VERSION), `type`,
`chainId` and `seq`, the change's position in the chain's change log: a listener that sees
a seq jump, or reconnects, reads the log from the last seq it handled. The payloads are
documented in sql/EVENTS.md. Each is a handful of fixed fields, far under PostgreSQL's
8,000-byte limit however large the batch: `ipo.mint` once per master the change minted
for (bounded by the masters), the per-row events (`nft.transfer`, `coin.transfer`,
`dividend.deposit`, `dividend.claim`) only for a kind of which the change added at most
MAX_ROW_NOTICES rows, and the change's summary (`indexer.batch`,
`indexer.reorg`, `indexer.discrepancy`, `indexer.forget`) always, last. A summary's list of
what to invalidate is inlined only when the payload stays under MAX_PAYLOAD_BYTES.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from indexer.chain import ZERO_ADDRESS
from indexer.ledger import Discrepancy
from indexer.store.changes import Change

CHANNEL = "audifi_events"
VERSION = 1
MAX_ROW_NOTICES = 500
MAX_PAYLOAD_BYTES = 7_900  # PostgreSQL refuses a payload of 8,000 bytes or more

_HEX = "'0x' || encode({}, 'hex')"


def _row_event(kind: str, fields: str, source: str) -> str:
    """One pg_notify per row of `source`: {v, type, chainId, seq, <fields>}."""
    return (
        f"select pg_notify($1, json_build_object('v', {VERSION}, 'type', '{kind}', "
        f"'chainId', $2::bigint, 'seq', $3::bigint, {fields})::text) {source}"
    )


_IPO_MINTS = _row_event(
    "ipo.mint",
    "'masterId', c.master_id, 'mintedSupply', sum(c.minted_supply)::text",
    "from master_contracts c where c.chain_id = $2 and c.master_id in "
    "(select master_id from stage_nft_transfers where from_address = $4) group by c.master_id",
)

_NFT_TRANSFERS = _row_event(
    "nft.transfer",
    f"'nftId', m.id, 'masterId', m.master_id, 'contract', {_HEX.format('m.contract_address')}, "
    f"'tokenId', m.token_id::text, 'newOwner', {_HEX.format('m.owner_address')}, "
    "'burned', m.is_burned, 'blockNumber', m.last_transfer_block",
    "from master_nfts m where m.chain_id = $2 and (m.contract_address, m.token_id) in "
    "(select contract_address, token_id from stage_nft_transfers)",
)

_COIN_TRANSFERS = _row_event(
    "coin.transfer",
    f"'token', {_HEX.format('s.token_address')}, 'from', {_HEX.format('s.from_address')}, "
    f"'to', {_HEX.format('s.to_address')}, 'value', s.value::text, "
    f"'blockNumber', s.block_number, 'txHash', {_HEX.format('s.tx_hash')}, "
    "'logIndex', s.log_index",
    "from (select * from stage_token_transfers order by block_number, log_index) s",
)

_DIVIDEND_DEPOSITS = _row_event(
    "dividend.deposit",
    f"'distributor', {_HEX.format('s.distributor_address')}, 'masterId', c.master_id, "
    f"'dividendId', s.dividend_id::text, 'payer', {_HEX.format('s.payer_address')}, "
    f"'token', {_HEX.format('s.token_address')}, 'amount', s.amount::text, "
    "'amountPerShare', s.amount_per_share::text, 'blockNumber', s.block_number, "
    f"'txHash', {_HEX.format('s.tx_hash')}, 'logIndex', s.log_index",
    "from (select * from stage_dividend_events order by block_number, log_index) s "
    "left join master_contracts c on c.chain_id = $2 "
    "and c.distributor_address = s.distributor_address",
)

_DIVIDEND_CLAIMS = _row_event(
    "dividend.claim",
    f"'distributor', {_HEX.format('s.distributor_address')}, "
    f"'dividendId', s.dividend_id::text, 'holder', {_HEX.format('s.holder_address')}, "
    "'tokenId', s.token_id::text, 'amount', s.amount::text, 'blockNumber', s.block_number, "
    f"'txHash', {_HEX.format('s.tx_hash')}, 'logIndex', s.log_index",
    "from (select * from stage_dividend_claims order by block_number, log_index) s",
)


async def notify_rows(conn: asyncpg.Connection, change: Change, seq: int) -> None:
    """The per-row events of a batch whose rows are still in the staging tables, after the
    derived state is written."""
    added = change.added
    head = (CHANNEL, change.chain_id, seq)
    if added.get("nft_transfers", 0):
        await conn.execute(_IPO_MINTS, *head, ZERO_ADDRESS)
    for table, statement in (
        ("nft_transfers", _NFT_TRANSFERS),
        ("token_transfers", _COIN_TRANSFERS),
        ("dividend_events", _DIVIDEND_DEPOSITS),
        ("dividend_claims", _DIVIDEND_CLAIMS),
    ):
        if 0 < added.get(table, 0) <= MAX_ROW_NOTICES:
            await conn.execute(statement, *head)


async def notify_change(
    conn: asyncpg.Connection, change: Change, seq: int, *, heal: Discrepancy | None = None
) -> None:
    """The change's summary: `indexer.batch`, `.reorg`, `.discrepancy` or `.forget`."""
    payload: dict[str, Any] = {
        "v": VERSION,
        "type": _SUMMARY_TYPES[change.kind],
        "chainId": change.chain_id,
        "seq": seq,
        **change.summary(),
    }
    if heal is not None:
        payload |= {
            "blockNumber": heal.block_number,
            "kind": heal.kind,
            "ledgerCount": heal.ledger.log_count if heal.ledger else 0,
            "chainCount": heal.chain.log_count if heal.chain else 0,
            "rowsAdded": sum(change.added.values()),
        }
    invalidates = change.invalidates
    if invalidates is not None:
        inline = orjson.dumps(payload | {"invalidates": orjson.Fragment(invalidates)})
        payload["invalidates"] = None  # too long: read indexer_changes (chainId, seq)
        encoded = inline if len(inline) <= MAX_PAYLOAD_BYTES else orjson.dumps(payload)
    else:
        encoded = orjson.dumps(payload)
    await conn.execute("select pg_notify($1, $2)", CHANNEL, encoded.decode())


_SUMMARY_TYPES = {
    "batch": "indexer.batch",
    "reorg": "indexer.reorg",
    "rewind": "indexer.reorg",
    "heal": "indexer.discrepancy",
    "forget": "indexer.forget",
}
