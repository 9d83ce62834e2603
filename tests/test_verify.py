"""`audifi-indexer verify` against a real chain: silent on a correct index, and it names
each deliberately corrupted row (exit 3), read-only all along."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import pytest

from indexer.backfill import backfill
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.verify import DIFFERENCES_EXIT_CODE, run_verify
from tests.helpers import pg
from tests.helpers.chain import Chain, run_cli, settings_for
from tests.helpers.chainstate import snapshot
from tests.helpers.livechain import LiveChain, small_chain
from tests.helpers.ops import json_lines

Corruption = Callable[[asyncpg.Connection], Awaitable[list[str]]]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with small_chain(seed=31) as chain:
        yield chain


@pytest.fixture(scope="module")
def indexed(pg_databases: pg.Databases, template_db: str, live: LiveChain) -> Iterator[str]:
    """A database holding a correct index of the whole chain (a template: no connections)."""
    name = pg_databases.create(template=template_db)
    asyncio.run(_index(pg_databases.url(name), live.chain))
    yield name
    pg_databases.drop(name)


@pytest.fixture
def index_url(pg_databases: pg.Databases, indexed: str) -> Iterator[str]:
    """A fresh copy of the correct index, for a test to corrupt."""
    name = pg_databases.create(template=indexed)
    yield pg_databases.url(name)
    pg_databases.drop(name)


async def _index(url: str, chain: Chain) -> None:
    async with open_pipeline(settings_for(url, chain)) as p:
        await ensure_checkpoint(p)
        head = await p.source.head()
        await backfill(p, chain.factory_block, head, head=head, concurrency=2)


def _verify(url: str, live: LiveChain, first: int, last: int) -> subprocess.CompletedProcess[str]:
    return run_cli(url, live.chain, "verify", "--from-block", str(first), "--to-block", str(last))


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def test_a_correct_index_has_no_differences_and_verify_writes_nothing(
    index_url: str, live: LiveChain
) -> None:
    head = live.head()
    (burned,) = asyncio.run(_fetch(index_url, "select count(*) from master_nfts where is_burned"))
    assert burned[0] > 0, "the chain should burn NFTs, whose ownerOf reverts"
    before = asyncio.run(snapshot(index_url))

    result = _verify(index_url, live, 0, head)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith(f"verify 0..{head}: no differences ("), lines[0]
    assert f"compared at block {head}, the block the stored state stands for)" in lines[0]
    json_lines(result.stderr)
    assert asyncio.run(snapshot(index_url)) == before


async def _change_an_owner(conn: asyncpg.Connection) -> list[str]:
    row = await conn.fetchrow(
        "update master_nfts set owner_address = $1 where id = "
        "(select id from master_nfts where not is_burned order by token_id limit 1) "
        "returning contract_address, token_id",
        b"\x11" * 20,
    )
    assert row is not None
    return [f"NFT 0x{bytes(row[0]).hex()} #{row[1]}: stored owner 0x{'11' * 20}, ownerOf at block"]


async def _delete_a_raw_row(conn: asyncpg.Connection) -> list[str]:
    number = await conn.fetchval(
        "select block_number from nft_transfers "
        "group by block_number order by count(*) desc limit 1"
    )
    before = await conn.fetchval(
        "select count(*) from nft_transfers where block_number = $1", number
    )
    await conn.execute(
        "delete from nft_transfers where ctid = "
        "(select ctid from nft_transfers where block_number = $1 limit 1)",
        number,
    )
    return [f"block {number}: {before - 1} nft_transfers row(s) stored, the node has {before}"]


async def _change_a_block_hash(conn: asyncpg.Connection) -> list[str]:
    number = await conn.fetchval(
        "update token_transfers set block_hash = $1 where ctid = "
        "(select ctid from token_transfers order by block_number desc limit 1) "
        "returning block_number",
        b"\x22" * 32,
    )
    return [f"block {number}: 1 token_transfers row(s) stored under hash 0x{'22' * 32}"]


async def _change_a_balance(conn: asyncpg.Connection) -> list[str]:
    row = await conn.fetchrow(
        "update token_holders set balance = balance + 7 where (token_address, holder_address) = "
        "(select token_address, holder_address from token_holders where balance > 0 "
        "order by holder_address limit 1) returning token_address, holder_address, balance"
    )
    assert row is not None
    token, holder = bytes(row[0]).hex(), bytes(row[1]).hex()
    return [
        f"coin 0x{token} holder 0x{holder}: stored balance {row[2]}, balanceOf at block",
        f"says {row[2] - 7}",
    ]


async def _change_the_window(conn: asyncpg.Connection) -> list[str]:
    number = await conn.fetchval(
        "update indexer_blocks set block_hash = $1 where block_number = "
        "(select block_number from indexer_checkpoints) returning block_number",
        b"\x33" * 32,
    )
    return [f"block {number}: the reorg window (indexer_blocks) has hash 0x{'33' * 32}"]


@pytest.mark.parametrize(
    "corrupt",
    [
        _change_an_owner,
        _delete_a_raw_row,
        _change_a_block_hash,
        _change_a_balance,
        _change_the_window,
    ],
    ids=["owner", "deleted-row", "block-hash", "balance", "window-hash"],
)
def test_a_corrupted_row_is_named_and_exits_non_zero(
    index_url: str, live: LiveChain, corrupt: Corruption
) -> None:
    expected = asyncio.run(_corrupt(index_url, corrupt))
    head = live.head()

    result = _verify(index_url, live, 0, head)

    assert result.returncode == DIFFERENCES_EXIT_CODE, result.stdout + result.stderr
    *differences, summary = result.stdout.splitlines()
    assert len(differences) == 1, result.stdout
    for fragment in expected:
        assert fragment in differences[0], differences[0]
    assert summary.startswith(f"verify 0..{head}: 1 difference ("), summary


async def _corrupt(url: str, corrupt: Corruption) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return await corrupt(conn)
    finally:
        await conn.close()


async def test_only_the_range_asked_for_is_compared(
    index_url: str, live: LiveChain, capsys: pytest.CaptureFixture[str]
) -> None:
    (expected,) = await _corrupt(index_url, _change_a_block_hash)
    number = int(expected.split(":")[0].removeprefix("block "))
    settings = settings_for(index_url, live.chain)
    capsys.readouterr()

    assert await run_verify(settings, number + 1, live.head())
    assert await run_verify(settings, 0, number - 1)
    assert not await run_verify(settings, number, number)
    assert expected in capsys.readouterr().out


def test_a_range_beyond_the_head_or_backwards_is_refused(index_url: str, live: LiveChain) -> None:
    head = live.head()
    beyond = _verify(index_url, live, 0, head + 1000)
    assert beyond.returncode == 2  # bad input, like backfill's (the README's exit codes)
    assert f"error: --to-block {head + 1000} is beyond the node's head {head}" in beyond.stderr
    backwards = _verify(index_url, live, 10, 5)
    assert backwards.returncode == 2
    assert "--from-block 10 is after --to-block 5" in backwards.stderr
