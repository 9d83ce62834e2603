"""Following the head: live activity, NOTIFY, quarantine of malformed logs, lookalikes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from indexer import metrics
from indexer.decode import TRANSFER
from indexer.devchain import contracts as c
from indexer.devchain.anvil import dev_accounts, start_anvil
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.step import Outcome, Pipeline, follow_step
from indexer.store.notify import CHANNEL
from tests.helpers.chain import Chain, settings_for
from tests.helpers.chainstate import mismatches, oracle
from tests.helpers.events import checked


@pytest.fixture
def live_chain() -> Iterator[tuple[Chain, Workload]]:
    anvil = start_anvil(no_mining=True)
    try:
        rpc = RpcClient(anvil.url)
        workload = Workload(rpc, WorkloadConfig(seed=3, masters=3, artists=3))
        summary = workload.run(600)
        yield Chain(anvil, summary.factory, summary.factory_block), workload
        rpc.close()
    finally:
        anvil.stop()


@pytest.fixture
async def pipeline(
    database_url: str, live_chain: tuple[Chain, Workload]
) -> AsyncIterator[Pipeline]:
    chain, _ = live_chain
    async with open_pipeline(settings_for(database_url, chain)) as p:
        await ensure_checkpoint(p)
        yield p


async def _to_head(p: Pipeline) -> None:
    """Step until the follower reports it is at the head."""
    for _ in range(200):
        if (await follow_step(p)).outcome is Outcome.IDLE:
            return
    raise AssertionError("the follower never reached the head")


async def test_live_activity_is_reflected_block_by_block(
    database_url: str, live_chain: tuple[Chain, Workload], pipeline: Pipeline
) -> None:
    chain, workload = live_chain
    await _to_head(pipeline)
    for _ in range(5):
        await asyncio.to_thread(workload.round, 60)
        result = await follow_step(pipeline)
        assert result.outcome is Outcome.PROGRESSED
        assert result.to_block == result.head
        assert await mismatches(database_url, oracle(chain.url, chain.factory)) == []


async def test_notify_carries_mints_and_transfers_after_commit(
    database_url: str, live_chain: tuple[Chain, Workload], pipeline: Pipeline
) -> None:
    _, workload = live_chain
    await _to_head(pipeline)
    received: list[dict[str, str]] = []
    got_transfer = asyncio.Event()

    def on_notify(*args: object) -> None:
        payload = checked(str(args[3]))
        received.append(payload)
        if payload["type"] == "nft.transfer":
            got_transfer.set()

    listener = await asyncpg.connect(database_url)
    await listener.add_listener(CHANNEL, on_notify)
    try:
        await asyncio.to_thread(workload.round, 80)
        await follow_step(pipeline)
        owners = await listener.fetch(
            "select id::text, '0x' || encode(owner_address, 'hex') as owner from master_nfts"
        )
        await asyncio.wait_for(got_transfer.wait(), timeout=10)
        coins = [r for r in received if r["type"] == "coin.transfer"]
        assert coins, received
        stored = await listener.fetch(
            "select '0x' || encode(token_address, 'hex') as token, "
            "'0x' || encode(from_address, 'hex') as sender, "
            "'0x' || encode(to_address, 'hex') as recipient, value::text as value, "
            "'0x' || encode(tx_hash, 'hex') as tx, log_index from token_transfers "
            "where block_number between $1 and $2",
            min(c["blockNumber"] for c in coins),
            max(c["blockNumber"] for c in coins),
        )
    finally:
        await listener.close()
    # One notice per coin transfer the step wrote, with its exact value.
    assert sorted(
        (c["token"], c["from"], c["to"], c["value"], c["txHash"], c["logIndex"]) for c in coins
    ) == sorted(tuple(r) for r in stored)
    transfers = [r for r in received if r["type"] == "nft.transfer"]
    assert transfers, received
    by_id = {r["id"]: r["owner"] for r in owners}
    assert all(by_id[t["nftId"]] == t["newOwner"] for t in transfers)
    mints = [r for r in received if r["type"] == "ipo.mint"]
    assert all(int(m["mintedSupply"]) > 0 for m in mints)


def _emit_raw_log_code(topics: list[bytes], data_len: int) -> str:
    """EVM code that emits one log with these topics and `data_len` zero bytes of data."""
    code = b""
    for topic in reversed(topics):
        code += b"\x7f" + topic  # PUSH32
    code += b"\x60" + bytes([data_len]) + b"\x60\x00"  # PUSH1 size, PUSH1 offset
    code += bytes([0xA0 + len(topics)]) + b"\x00"  # LOGn, STOP
    return "0x" + code.hex()


async def test_malformed_logs_are_quarantined_and_indexing_goes_on(
    database_url: str, live_chain: tuple[Chain, Workload], pipeline: Pipeline
) -> None:
    chain, workload = live_chain
    await _to_head(pipeline)
    coin, nft = workload.coins[0].token, workload.masters[0].nft
    sender = dev_accounts(chain.anvil.rpc)[0]
    word = bytes(12) + sender
    cases = {
        coin: _emit_raw_log_code([TRANSFER, word, word, word], 32),  # ERC-20 with 4 topics
        nft: _emit_raw_log_code([TRANSFER, word, word], 0),  # ERC-721 with 3 topics
    }
    rpc = chain.anvil.rpc
    for address, code in cases.items():
        rpc.call("anvil_setCode", ["0x" + address.hex(), code])
    before = metrics.QUARANTINED_LOGS._value.get()
    c.transact(rpc, [c.Tx(sender, a, b"", 100_000) for a in cases])
    await _to_head(pipeline)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("select address, reason from indexer_quarantine")
    finally:
        await conn.close()
    assert {bytes(r["address"]) for r in rows} == set(cases)
    assert all("topics" in r["reason"] for r in rows)
    assert metrics.QUARANTINED_LOGS._value.get() - before == 2


async def test_lookalike_contracts_outside_the_factory_are_ignored(
    database_url: str, live_chain: tuple[Chain, Workload], pipeline: Pipeline
) -> None:
    chain, _ = live_chain
    rpc = chain.anvil.rpc
    other = Workload(rpc, WorkloadConfig(seed=9, masters=1, artists=1))
    other_summary = other.run(200)
    assert other_summary.factory != chain.factory
    await _to_head(pipeline)
    conn = await asyncpg.connect(database_url)
    try:
        foreign = await conn.fetchval(
            "select count(*) from nft_transfers where contract_address = $1",
            other.masters[0].nft,
        )
    finally:
        await conn.close()
    assert foreign == 0
    assert await mismatches(database_url, oracle(chain.url, chain.factory)) == []
