"""Events the backend can rely on (issue 18): NOTIFY payloads that fit PostgreSQL's limit
whatever the batch, and the change log a disconnected backend catches up from."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from indexer.backfill import backfill
from indexer.commands import run_rewind
from indexer.devchain.anvil import DEFAULT_CHAIN_ID
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.store import revert
from indexer.store.notify import CHANNEL, MAX_ROW_NOTICES, VERSION
from indexer.store.state import forget_chain
from tests.helpers.chain import settings_for
from tests.helpers.events import checked, schema_errors
from tests.helpers.livechain import LiveChain, small_chain
from tests.helpers.polling import eventually
from tests.helpers.reorgs import fetch

NOTIFY_LIMIT = 8000  # PostgreSQL refuses a payload of this many bytes or more
SUMMARIES = {"indexer.batch", "indexer.reorg", "indexer.discrepancy", "indexer.forget"}
# Per-row event type -> the change log's counter of that kind.
ROW_EVENTS = {
    "nft.transfer": "nft_transfers",
    "coin.transfer": "coin_transfers",
    "dividend.deposit": "dividend_deposits",
    "dividend.claim": "dividend_claims",
}
RAW_COUNTS = {
    "nft_transfers": "nft_transfers",
    "coin_transfers": "token_transfers",
    "dividend_deposits": "dividend_events",
    "dividend_claims": "dividend_claims",
}


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with small_chain(seed=18, events=6_000) as chain:
        yield chain


class Listener:
    """Every payload on the channel, raw, as the backend would receive it."""

    def __init__(self) -> None:
        self.raw: list[str] = []
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Listener:
        return self

    async def start(self, url: str) -> None:
        self.conn = await asyncpg.connect(url)
        await self.conn.add_listener(CHANNEL, lambda *args: self.raw.append(str(args[3])))

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def summaries(self, expected: int) -> None:
        """Wait until `expected` change summaries arrived: a change's summary is its last
        notification, so everything the changes sent has arrived then."""

        async def arrived() -> bool:
            return sum(p["type"] in SUMMARIES for p in self.payloads) >= expected

        await eventually(arrived, within=10, what=f"{expected} change summaries")

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """Every payload, each checked against the documented schema."""
        return [checked(p) for p in self.raw]


async def _backfill(url: str, live: LiveChain, start: int, end: int, **extra: Any) -> None:
    async with open_pipeline(settings_for(url, live.chain, **extra)) as p:
        await ensure_checkpoint(p)
        await backfill(p, start, end, head=live.head(), concurrency=2)


async def _changes(url: str) -> list[asyncpg.Record]:
    return await fetch(url, "select * from indexer_changes order by chain_id, seq")


async def test_a_backfill_of_thousands_of_transfers_fits_notify_and_the_change_log_counts_it(
    database_url: str, live: LiveChain
) -> None:
    async with Listener() as heard:
        await heard.start(database_url)
        await _backfill(database_url, live, live.chain.factory_block, live.head())
        await heard.summaries(len(await _changes(database_url)))
    assert max(len(p.encode()) for p in heard.raw) < NOTIFY_LIMIT
    payloads = heard.payloads
    assert {p["v"] for p in payloads} == {VERSION}
    changes = await _changes(database_url)
    assert [c["seq"] for c in changes] == list(range(1, len(changes) + 1))
    # Big batches only: the per-row events were left out, the summary says how many.
    assert max(c["nft_transfers"] for c in changes) > MAX_ROW_NOTICES
    summaries = [p for p in payloads if p["type"] in SUMMARIES]
    assert [s["seq"] for s in summaries] == [c["seq"] for c in changes]
    for change, summary in zip(changes, summaries, strict=True):
        assert summary["type"] == "indexer.batch"
        assert (summary["fromBlock"], summary["toBlock"]) == (
            change["from_block"],
            change["to_block"],
        )
        assert summary["nftTransfers"] == change["nft_transfers"]
        assert summary["coinTransfers"] == change["coin_transfers"]
        for kind, counter in ROW_EVENTS.items():
            rows = [p for p in payloads if p["type"] == kind and p["seq"] == change["seq"]]
            expected = change[counter] if change[counter] <= MAX_ROW_NOTICES else 0
            if kind == "nft.transfer":  # one per NFT that moved, not per transfer
                assert bool(rows) == bool(expected)
            else:
                assert len(rows) == expected, (kind, change)
    assert {"dividend.deposit", "dividend.claim", "coin.transfer"} <= {p["type"] for p in payloads}
    # Every row the index holds was counted by exactly one change.
    for counter, table in RAW_COUNTS.items():
        stored = await fetch(database_url, f"select count(*) as n from {table}")
        assert sum(c[counter] for c in changes) == stored[0]["n"], table
    blocks = await fetch(database_url, "select distinct block_number from nft_transfers")
    assert all(
        any(c["from_block"] <= b["block_number"] <= c["to_block"] for c in changes) for b in blocks
    )


async def test_a_reader_following_the_log_sees_no_gap_while_writers_race(
    database_url: str, live: LiveChain
) -> None:
    """Seq is given under the writer lock, so it is in commit order: a reader never sees
    seq N+1 before N, however many writers commit at once."""
    head = live.head()
    start = live.chain.factory_block
    middle = (start + head) // 2
    seen: list[int] = []
    done = asyncio.Event()

    async def read_on() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            while True:
                finished = done.is_set()
                cursor = seen[-1] if seen else 0
                rows = await conn.fetch(
                    "select seq from indexer_changes where seq > $1 order by seq", cursor
                )
                seen.extend(r["seq"] for r in rows)
                if finished:
                    return
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    reader = asyncio.create_task(read_on())
    writers = [
        _backfill(database_url, live, start, head, getlogs_max_range=3),
        _backfill(database_url, live, middle, head, getlogs_max_range=2),
        _backfill(database_url, live, start, middle, getlogs_max_range=4),
    ]
    await asyncio.gather(*writers)
    done.set()
    await reader
    assert len(seen) > 10
    assert seen == list(range(1, len(seen) + 1))
    changes = await _changes(database_url)
    assert [c["seq"] for c in changes] == seen
    stored = await fetch(database_url, "select count(*) as n from nft_transfers")
    assert sum(c["nft_transfers"] for c in changes) == stored[0]["n"]


async def test_a_rewind_lists_what_it_made_stale_and_the_payload_stays_small(
    database_url: str, live: LiveChain
) -> None:
    head = live.head()
    await _backfill(database_url, live, live.chain.factory_block, head)
    fork = live.chain.factory_block + (head - live.chain.factory_block) // 3
    above = await fetch(
        database_url,
        "select distinct '0x' || encode(contract_address, 'hex') as c, token_id::text as t "
        "from nft_transfers where block_number > $1",
        fork,
    )
    holders = await fetch(
        database_url,
        "select distinct '0x' || encode(token_address, 'hex') as t, '0x' || encode(h, 'hex') as h "
        "from token_transfers cross join lateral (values (from_address), (to_address)) v(h) "
        "where block_number > $1 and h <> '\\x0000000000000000000000000000000000000000'",
        fork,
    )
    settings = settings_for(database_url, live.chain)
    async with Listener() as heard:
        await heard.start(database_url)
        await run_rewind(settings, fork)
        await heard.summaries(1)
    (notice,) = heard.payloads
    change = (await _changes(database_url))[-1]
    assert (notice["type"], notice["seq"], notice["forkBlock"]) == (
        "indexer.reorg",
        change["seq"],
        fork,
    )
    assert (notice["cause"], change["kind"]) == ("operator", "rewind")
    invalidates = json.loads(change["invalidates"])
    assert invalidates["complete"] is True
    assert sorted(map(tuple, invalidates["nfts"])) == sorted((r["c"], r["t"]) for r in above)
    assert sorted(map(tuple, invalidates["coinHolders"])) == sorted(
        (r["t"], r["h"]) for r in holders
    )
    # Thousands of keys: listed in the log, not in the payload, which stays under the limit.
    assert len(invalidates["nfts"]) > 100
    assert notice["invalidates"] is None
    assert len(heard.raw[0].encode()) < NOTIFY_LIMIT
    assert change["rows_removed"] == notice["rowsRemoved"] > 0


async def test_over_the_cap_a_rewind_says_the_list_is_incomplete(
    database_url: str, live: LiveChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = live.head()
    await _backfill(database_url, live, live.chain.factory_block, head)
    monkeypatch.setattr(revert, "INVALIDATION_CAP", 5)
    settings = settings_for(database_url, live.chain)
    await run_rewind(settings, live.chain.factory_block + 2)
    invalidates = json.loads((await _changes(database_url))[-1]["invalidates"])
    assert invalidates["complete"] is False
    assert len(invalidates["nfts"]) == 5


async def test_a_small_reorg_inlines_what_to_invalidate(database_url: str, live: LiveChain) -> None:
    head = live.head()
    await _backfill(database_url, live, live.chain.factory_block, head)
    settings = settings_for(database_url, live.chain)
    async with Listener() as heard:
        await heard.start(database_url)
        await run_rewind(settings, head - 1)
        await heard.summaries(1)
    (notice,) = heard.payloads
    change = (await _changes(database_url))[-1]
    assert notice["invalidates"] == json.loads(change["invalidates"])
    assert notice["invalidates"]["nfts"] or notice["invalidates"]["coinHolders"]


async def test_forgetting_a_chain_is_a_change_and_seq_goes_on(
    database_url: str, live: LiveChain
) -> None:
    head = live.head()
    await _backfill(database_url, live, live.chain.factory_block, head)
    before = await _changes(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await forget_chain(pool, DEFAULT_CHAIN_ID)
    finally:
        await pool.close()
    await _backfill(database_url, live, live.chain.factory_block, head)
    after = await _changes(database_url)
    forgot = after[len(before)]
    assert forgot["kind"] == "forget" and json.loads(forgot["invalidates"]) == {"complete": False}
    assert [c["seq"] for c in after] == list(range(1, len(after) + 1))
    assert sum(c["nft_transfers"] for c in after[len(before) + 1 :]) == sum(
        c["nft_transfers"] for c in before
    )


def test_the_schema_refuses_what_a_listener_could_not_use() -> None:
    good = {
        "v": VERSION,
        "type": "coin.transfer",
        "chainId": 1,
        "seq": 3,
        "token": "0x" + "ab" * 20,
        "from": "0x" + "00" * 20,
        "to": "0x" + "cd" * 20,
        "value": str(2**256 - 1),
        "blockNumber": 7,
        "txHash": "0x" + "ef" * 32,
        "logIndex": 0,
    }
    assert schema_errors(good) == []
    assert schema_errors(good | {"value": 1.5e18})  # a float loses a uint256
    assert schema_errors(good | {"v": 2})
    assert schema_errors({k: v for k, v in good.items() if k != "seq"})
    assert schema_errors(good | {"type": "coin.moved"})
