"""`audifi-indexer status` (table and --json) and the dashboards' views, refreshed on
demand by `refresh-views` and periodically by the daemon."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from indexer.backfill import backfill
from indexer.devchain.anvil import DEFAULT_CHAIN_ID
from indexer.service import ensure_checkpoint, open_pipeline
from tests.helpers.chain import INDEXER, Chain, indexer_env, running_indexer, settings_for
from tests.helpers.livechain import LiveChain, small_chain
from tests.helpers.polling import wait_until

RAW_KINDS = ("nft_transfers", "token_transfers", "dividend_events", "dividend_claims")
MASTERS = ARTISTS = 3  # what small_chain deploys


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with small_chain(seed=51, events=1_500) as chain:
        yield chain


async def _index(url: str, chain: Chain) -> int:
    async with open_pipeline(settings_for(url, chain)) as p:
        await ensure_checkpoint(p)
        head = await p.source.head()
        await backfill(p, chain.factory_block, head, head=head, concurrency=2)
        return head


def _cli(url: str, live: LiveChain, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*INDEXER, *args],
        env=indexer_env(url, live.chain),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def _status(url: str, live: LiveChain) -> dict[str, Any]:
    report = json.loads(_cli(url, live, "status", "--json").stdout)
    assert isinstance(report, dict)
    return report


async def _counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            kind: await conn.fetchval(f"select count(*) from {kind}")
            for kind in (*RAW_KINDS, "master_contracts", "artist_tokens", "indexer_quarantine")
        }
    finally:
        await conn.close()


def test_status_reports_checkpoint_head_lag_contracts_events_and_last_reorg(
    database_url: str, live: LiveChain
) -> None:
    head = asyncio.run(_index(database_url, live.chain))
    report = _status(database_url, live)
    counts = asyncio.run(_counts(database_url))
    assert report == {
        "chain_id": DEFAULT_CHAIN_ID,
        "head_block": head,
        "indexed_block": head,
        "lag_blocks": 0,
        "tracked_contracts": 1 + 2 * MASTERS + ARTISTS,
        "events": {
            **{kind: counts[kind] for kind in RAW_KINDS},
            "master_contracts": MASTERS,
            "artist_tokens": ARTISTS,
            "quarantined": counts["indexer_quarantine"],
        },
        "last_reorg": None,
        "committed_ranges": [[live.chain.factory_block, head]],
        "audited_block": -1,
        "discrepancies": {"by_kind": {}, "last_block": None, "last_at": None},
        "replica": None,  # read from the primary: no AUDIFI_DATABASE_REPLICA_URL
    }
    assert counts["nft_transfers"] > 0 and counts["token_transfers"] > 0

    new_head = live.mine(5)
    fork = head - 10
    _cli(database_url, live, "rewind", "--to-block", str(fork))
    after = _status(database_url, live)
    assert (after["head_block"], after["indexed_block"], after["lag_blocks"]) == (
        new_head,
        fork,
        new_head - fork,
    )
    reorg = after["last_reorg"]
    assert (reorg["fork_block"], reorg["depth"]) == (fork, head - fork)
    assert reorg["cause"] == "operator", "a rewind asked for is not a reorg of the chain"
    assert after["committed_ranges"] == [[live.chain.factory_block, fork]]
    remaining = asyncio.run(_counts(database_url))
    reverted = sum(counts[k] - remaining[k] for k in RAW_KINDS)
    assert reverted > 0 and reorg["events_reverted"] >= reverted
    assert after["events"]["nft_transfers"] == remaining["nft_transfers"]

    table = _cli(database_url, live, "status").stdout
    assert f"lag (blocks)       {new_head - fork}" in table
    assert f"indexed block      {fork}" in table
    assert f"last rewind        {reorg['detected_at']} to block {fork}" in table
    assert "(asked for by an operator)" in table
    assert f"to block {fork} depth {head - fork}" in table


async def _add_backend_rows(url: str, master_id: bytes) -> uuid.UUID:
    """The backend's artist and master for an on-chain master (what the views join on)."""
    conn = await asyncpg.connect(url)
    try:
        user = await conn.fetchval(
            "insert into users (email) values ($1) returning id", "artist@example.com"
        )
        artist = await conn.fetchval(
            "insert into artists (user_id, artist_name, slug) values ($1, 'An Artist', "
            "'an-artist') returning id",
            user,
        )
        await conn.execute(
            "insert into masters (id, artist_id, title) values ($1, $2, 'A Master')",
            uuid.UUID(bytes=master_id),
            artist,
        )
        return uuid.UUID(str(artist))
    finally:
        await conn.close()


async def _performance(url: str, artist: uuid.UUID) -> tuple[int, int] | None:
    """(masters_count, nft_holders_count) of the artist in the view, None if absent."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "select masters_count, nft_holders_count from artist_performance where artist_id = $1",
            artist,
        )
        return None if row is None else (row[0], row[1])
    finally:
        await conn.close()


async def _holders(url: str, master_id: bytes) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "select count(distinct owner_address) from master_nfts "
                "where master_id = $1 and not is_burned",
                uuid.UUID(bytes=master_id),
            )
        )
    finally:
        await conn.close()


def test_refresh_views_brings_the_dashboards_up_to_date(database_url: str, live: LiveChain) -> None:
    master = live.workload.masters[0].master_id
    asyncio.run(_index(database_url, live.chain))
    artist = asyncio.run(_add_backend_rows(database_url, master))
    assert asyncio.run(_performance(database_url, artist)) is None, "not refreshed yet"

    _cli(database_url, live, "refresh-views")

    holders = asyncio.run(_holders(database_url, master))
    assert holders > 0
    assert asyncio.run(_performance(database_url, artist)) == (1, holders)


def test_the_daemon_refreshes_the_views_when_asked_to(database_url: str, live: LiveChain) -> None:
    master = live.workload.masters[0].master_id
    artist = asyncio.run(_add_backend_rows(database_url, master))
    env = indexer_env(database_url, live.chain, AUDIFI_VIEW_REFRESH_INTERVAL="0.2")
    head = live.head()
    with running_indexer(["run"], env):
        wait_until(
            lambda: asyncio.run(_checkpoint(database_url)) == head,
            timeout=60,
            what="the daemon to index the chain",
        )
        holders = asyncio.run(_holders(database_url, master))
        wait_until(
            lambda: asyncio.run(_performance(database_url, artist)) == (1, holders),
            timeout=30,
            what="a periodic refresh to show the artist's holders",
        )


async def _checkpoint(url: str) -> int | None:
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval("select block_number from indexer_checkpoints")
        return None if value is None else int(value)
    finally:
        await conn.close()
