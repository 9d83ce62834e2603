"""The dev chain toolkit on a real anvil: process lifecycle, spec events, determinism, oracle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from indexer.devchain import contracts as c
from indexer.devchain.anvil import (
    Anvil,
    block_number,
    dev_accounts,
    mine,
    reorg,
    revert,
    rollback,
    snapshot,
    start_anvil,
)
from indexer.devchain.oracle import Deposit, read_state
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import DEFAULT_MIX, Kind, Workload, WorkloadConfig

# topic0 of each spec event, from the spec's signatures; and the topic count it must have.
SPEC_TOPIC0 = {
    keccak(text=s).hex(): s
    for s in (
        "MasterDeployed(bytes16,address,address,uint256)",
        "ArtistCoinDeployed(bytes16,address,string,uint8)",
        "Transfer(address,address,uint256)",
        "DividendDeposited(uint256,address,address,uint256,uint256)",
        "DividendClaimed(uint256,address,uint256,uint256)",
    )
}
# Every kind weighted so that a small run has each of them.
ALL_KINDS_MIX = {kind: 3 for kind in DEFAULT_MIX}
SMALL = WorkloadConfig(
    seed=7, masters=3, artists=3, master_supply=(40, 80), mix=ALL_KINDS_MIX, txs_per_block=4
)
EventTuple = tuple[int, int, int, str, tuple[str, ...], str]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    with start_anvil(no_mining=True) as node:
        yield node


def _logs(rpc: RpcClient, from_block: int = 0) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = rpc.call(
        "eth_getLogs", [{"fromBlock": hex(from_block), "toBlock": "latest"}]
    )
    return logs


def _event_tuples(rpc: RpcClient) -> list[EventTuple]:
    """What identifies the events of a run, without hashes or timestamps."""
    return [
        (
            int(log["blockNumber"], 16),
            int(log["transactionIndex"], 16),
            int(log["logIndex"], 16),
            log["address"],
            tuple(log["topics"]),
            log["data"],
        )
        for log in _logs(rpc)
    ]


def test_start_stop_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with start_anvil(no_mining=True, dump_state=state) as node:
        pid = node.pid
        mine(node.rpc, 5)
        assert _pid_alive(pid)
    assert not _pid_alive(pid)
    assert node.process.returncode is not None
    assert node.stop() == node.process.returncode  # idempotent
    with start_anvil(load_state=state) as again:
        assert block_number(again.rpc) == 5
    assert not _pid_alive(again.pid)


def test_fork_helpers(anvil: Anvil) -> None:
    rpc = anvil.rpc
    mine(rpc, 3)
    snap = snapshot(rpc)
    mine(rpc, 2)
    assert revert(rpc, snap) and block_number(rpc) == 3
    old_head = rpc.call("eth_getBlockByNumber", ["0x3", False])["hash"]
    admin = "0x" + dev_accounts(rpc)[0].hex()
    reorg(rpc, 2, [({"from": admin, "to": admin, "value": "0x1"}, 1)])
    new_head = rpc.call("eth_getBlockByNumber", ["0x3", False])
    assert block_number(rpc) == 3  # same height, new branch
    assert new_head["hash"] != old_head and len(new_head["transactions"]) == 1
    rollback(rpc, 1)
    assert block_number(rpc) == 2


def test_live_rounds_on_interval_mining() -> None:
    with start_anvil(block_time=0.2) as node:
        config = WorkloadConfig(seed=5, masters=2, artists=2, mine_blocks=False)
        workload = Workload(node.rpc, config)
        first = workload.run(300)
        second = workload.round(300)
        assert second.events >= 300 and second.first_block > first.first_block
        assert len(_logs(node.rpc)) == first.events + second.events


def test_small_workload_emits_exactly_the_spec_events(anvil: Anvil) -> None:
    workload = Workload(anvil.rpc, SMALL)
    summary = workload.run(2500)
    assert summary.events >= 2500
    assert all(summary.counts.get(kind.value, 0) > 0 for kind in Kind), summary.counts
    nfts = {"0x" + m.nft.hex() for m in workload.masters}
    coins = {"0x" + coin.token.hex() for coin in workload.coins}
    distributors = {"0x" + m.distributor.hex() for m in workload.masters}
    factory = "0x" + summary.factory.hex()
    expected_topics = {
        "MasterDeployed": ({factory}, 4),
        "ArtistCoinDeployed": ({factory}, 3),
        "DividendDeposited": (distributors, 3),
        "DividendClaimed": (distributors, 4),
    }
    logs = _logs(anvil.rpc, summary.factory_block)
    assert len(logs) == summary.events
    per_tx: dict[str, int] = {}
    for log in logs:
        name = SPEC_TOPIC0[log["topics"][0][2:]].split("(")[0]
        address, n_topics = log["address"], len(log["topics"])
        if name == "Transfer":  # ERC-721 has 4 topics, ERC-20 has 3
            ok = (address in nfts and n_topics == 4) or (address in coins and n_topics == 3)
        else:
            emitters, want = expected_topics[name]
            ok = address in emitters and n_topics == want
        assert ok, log
        per_tx[log["transactionHash"]] = per_tx.get(log["transactionHash"], 0) + 1
    assert max(per_tx.values()) >= 100  # one tx can emit hundreds of events
    assert summary.last_block - summary.first_block >= 3  # spread over several blocks


def test_workload_is_deterministic_for_a_seed() -> None:
    def events_of(seed: int) -> list[EventTuple]:
        with start_anvil(no_mining=True) as node:
            config = WorkloadConfig(seed=seed, masters=4, artists=4, mix=ALL_KINDS_MIX)
            workload = Workload(node.rpc, config)
            workload.run(1500)
            workload.round(200)  # live mode continues from the same state
            workload.round(200)
            return _event_tuples(node.rpc)

    first = events_of(11)
    assert len(first) >= 1900
    assert events_of(11) == first
    assert events_of(12) != first


def test_oracle_matches_the_workload_model(anvil: Anvil) -> None:
    workload = Workload(anvil.rpc, SMALL)
    summary = workload.run(3000)
    state = read_state(anvil.rpc, summary.factory, from_block=summary.factory_block)
    assert state.nft_owners == workload.expected_nft_owners()
    assert state.coin_balances == workload.expected_coin_balances()
    assert sum(len(b) for b in state.nft_burned.values()) == summary.counts[Kind.NFT_BURN]
    assert len(state.deposits) == (
        summary.counts[Kind.DEPOSIT_NATIVE] + summary.counts[Kind.DEPOSIT_TOKEN]
    )
    assert sum(state.claims_by_dividend.values()) == sum(state.claims_by_holder.values())


def test_oracle_on_a_hand_computed_scenario() -> None:
    with start_anvil() as node:  # automine: one block per transaction
        rpc = node.rpc
        admin, a, b, cc, payer = dev_accounts(rpc)[:5]
        factory = c.deploy_factory(rpc, admin, mine_blocks=False).address

        def run(*txs: c.Tx) -> list[c.Receipt]:
            return c.transact(rpc, txs, mine_blocks=False)

        receipts = run(
            c.deploy_master_tx(admin, factory, b"\x11" * 16, 5),
            c.deploy_artist_coin_tx(admin, factory, b"\x22" * 16, "TUNE", 18),
        )
        (master,) = c.masters_deployed(receipts)
        (coin,) = c.artist_coins_deployed(receipts)
        nft, dist, token = master.nft, master.distributor, coin.token
        minted_at = int(run(c.nft_mint_batch_tx(admin, nft, a, 3))[0]["blockNumber"], 16)
        run(
            c.nft_transfer_tx(a, nft, a, b, 2),
            c.nft_burn_tx(a, nft, 3),
            c.coin_mint_batch_tx(admin, token, [a, b], [100, 2**255]),
            c.coin_transfer_tx(a, token, cc, 40),
            c.coin_burn_tx(b, token, 2**254),
            c.coin_admin_transfer_batch_tx(admin, token, [b], [a], [1]),
            c.coin_transfer_tx(cc, token, a, 40),  # cc keeps a row with balance 0
            c.deposit_native_tx(payer, dist, 1000),  # 200 per share
            c.claim_batch_tx(admin, dist, 1, [1, 2]),
            c.deposit_token_tx(payer, dist, token, 10**6),  # 200_000 per share
            c.claim_batch_tx(admin, dist, 2, [1]),
        )
        with pytest.raises(c.TxFailed):  # each token claims once per dividend
            run(c.claim_batch_tx(admin, dist, 1, [1]))
        run(c.withdraw_native_tx(a, dist))  # a's 200 wei leave the distributor
        assert int(rpc.call("eth_getBalance", [c.hex_address(dist), "latest"]), 16) == 800

        state = read_state(rpc, factory)
        earlier = read_state(rpc, factory, block=minted_at)

    assert state.masters[nft].total_supply == 5 and state.masters[nft].distributor == dist
    assert state.artist_coins == {token: b"\x22" * 16}
    assert state.nft_minted == {nft: 3}
    assert state.nft_owners == {nft: {1: a, 2: b}}
    assert state.nft_burned == {nft: {3}}
    assert earlier.nft_owners == {nft: {1: a, 2: a, 3: a}}
    assert state.coin_balances == {token: {a: 101, b: 2**255 - 2**254 - 1, cc: 0}}
    assert state.coin_total_supply == {token: 100 + 2**255 - 2**254}
    assert state.deposits == {
        (dist, 1): Deposit(payer, bytes(20), 1000, 200),
        (dist, 2): Deposit(payer, token, 10**6, 200_000),
    }
    assert state.claims_by_dividend == {(dist, 1): 400, (dist, 2): 200_000}
    assert state.claims_by_holder == {(dist, a): 200_200, (dist, b): 200}


def test_calldata_encoder_matches_eth_abi() -> None:
    tokens = [bytes([i]) * 20 for i in range(1, 4)]
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("mintBatch(address,uint256)", (tokens[0], 5)),
        ("adminTransferBatch(uint256[],address[])", ([1, 2**256 - 1, 3], tokens)),
        ("adminTransferBatch(address[],address[],uint256[])", (tokens, tokens, [2**255, 0, 7])),
        ("deployArtistCoin(bytes16,string,uint8)", (b"\x07" * 16, "TUNE" * 9, 18)),
        ("deployArtistCoin(bytes16,string,uint8)", (b"\x07" * 16, "", 0)),
        ("claimBatch(uint256,uint256[])", (3, [])),
        ("depositNative()", ()),
    ]
    for signature, args in cases:
        types = signature[signature.index("(") + 1 : -1].split(",") if args else []
        expected = keccak(text=signature)[:4] + encode(types, list(args))
        assert c.encode_call(signature, *args) == expected, signature
    with pytest.raises(ValueError):
        c.encode_call("deployArtistCoin(bytes16,string,uint8)", b"\x07" * 16, "X", 256)
