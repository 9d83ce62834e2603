"""Reorg safety (issue 5) against real anvil forks and PostgreSQL.

Forks are built with `anvil_reorg` (same height, with or without replacement
transactions) and `evm_snapshot`/`evm_revert` followed by new blocks. The
in-process tests drive `follow_step` themselves between chain mutations; the
daemon tests run `python -m indexer run` and stop exactly that process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from indexer import metrics
from indexer.backfill import backfill
from indexer.chain import ContractKind
from indexer.commands import run_rewind
from indexer.config import load_settings
from indexer.devchain import contracts as c
from indexer.devchain.anvil import block_number, mine, revert
from indexer.devchain.anvil import snapshot as evm_snapshot
from indexer.devchain.rpc import RpcClient
from indexer.errors import Fatal, ReorgTooDeep
from indexer.follow import CATCH_UP_MIN_BLOCKS
from indexer.health import Health
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.step import Outcome, Pipeline, StepResult
from indexer.store.notify import CHANNEL
from indexer.tables import TABLE_NAMES
from tests.helpers import pg
from tests.helpers.chain import (
    INDEXER,
    following,
    indexer_env,
    running_indexer,
    settings_for,
    wait_exit,
)
from tests.helpers.chainstate import mismatches, oracle, snapshot
from tests.helpers.events import checked
from tests.helpers.polling import eventually
from tests.helpers.proxy import RpcProxy
from tests.helpers.reorgs import (
    Devchain,
    at_head,
    backfilled,
    fetch,
    follow_to_head,
    new_devchain,
    orphans,
    read_view,
    reorg_checked,
    step,
    sync,
    tx_object,
)

SEED_ENV = "AUDIFI_REORG_SEED"
MUTATIONS = 48  # chain changes per property run (~10 s here)


@pytest.fixture
def fresh_database_url(pg_databases: pg.Databases, template_db: str) -> Iterator[str]:
    """A second migrated database, for a from-scratch index of the final chain."""
    name = pg_databases.create(template=template_db)
    yield pg_databases.url(name)
    pg_databases.drop(name)


@pytest.fixture
def devchains() -> Iterator[list[Devchain]]:
    """Chains a test starts; every one is stopped at the end, by PID."""
    started: list[Devchain] = []
    yield started
    for dev in started:
        dev.stop()


def _chain(devchains: list[Devchain], *, seed: int, blocks: int, **kw: int) -> Devchain:
    dev = new_devchain(seed=seed, blocks=blocks, **kw)
    devchains.append(dev)
    return dev


async def _agrees_with_chain(database_url: str, dev: Devchain) -> None:
    assert await orphans(database_url, dev.rpc) == []
    assert await mismatches(database_url, oracle(dev.chain.url, dev.chain.factory)) == []


async def _same_as_fresh_index(database_url: str, fresh_url: str, dev: Devchain) -> None:
    assert await snapshot(database_url) == await backfilled(fresh_url, dev.chain)
    assert await mismatches(fresh_url, oracle(dev.chain.url, dev.chain.factory)) == []


# 1. The property: any sequence of forks ends where a fresh index of the final chain is.


async def test_random_reorgs_end_identical_to_a_fresh_index_of_the_final_chain(
    database_url: str, fresh_database_url: str, devchains: list[Devchain]
) -> None:
    seed = int(os.environ.get(SEED_ENV) or random.randrange(2**32))
    history: list[str] = []
    try:
        await _random_reorgs(seed, database_url, fresh_database_url, devchains, history)
    except BaseException as e:
        e.add_note(f"reorg property: seed {seed} (rerun with {SEED_ENV}={seed}); {history}")
        raise


async def _random_reorgs(
    seed: int, url: str, fresh_url: str, devchains: list[Devchain], history: list[str]
) -> None:
    rng = random.Random(seed)
    dev = _chain(devchains, seed=seed, blocks=66)
    snapshots: list[tuple[str, int]] = []
    async with open_pipeline(settings_for(url, dev.chain)) as p:
        await ensure_checkpoint(p)
        await sync(p)
        for _ in range(MUTATIONS):
            action = rng.choices(ACTIONS, [3, 4, 1, 2, 1])[0]
            history.append(await _mutate(action, p, dev, rng, snapshots))
            snapshots.append((evm_snapshot(dev.rpc), block_number(dev.rpc)))
            for _ in range(rng.randint(0, 3)):
                await step(p)
        await sync(p)
    assert sum(h.startswith(("reorg", "empty", "revert")) for h in history) >= 8, history
    await _agrees_with_chain(url, dev)
    await _same_as_fresh_index(url, fresh_url, dev)


# What the property test does between follow steps: new blocks, a reorg with new
# transactions, a reorg to empty blocks, a revert to an earlier snapshot and new blocks
# (often fewer: a fork onto a shorter branch), or a backfill over the tip.
ACTIONS = ("activity", "reorg", "empty_reorg", "revert", "backfill")


async def _mutate(
    action: str, p: Pipeline, dev: Devchain, rng: random.Random, snapshots: list[tuple[str, int]]
) -> str:
    rpc, head = dev.rpc, block_number(dev.rpc)
    checkpoint = await p.store.checkpoint()
    assert checkpoint is not None
    # Keep every fork above the factory and well inside the 128-block window.
    lowest = max(dev.chain.factory_block + 1, checkpoint.number - 100)
    if action == "revert":
        usable = [
            (i, s) for i, s in enumerate(snapshots) if lowest <= s[1] and 0 < head - s[1] <= 64
        ]
        if usable:
            i, (snapshot_id, at) = rng.choice(usable)
            assert revert(rpc, snapshot_id)
            del snapshots[i:]
            new_blocks = rng.randint(1, head - at + 2)
            dev.activity.blocks(new_blocks)
            shorter = " (shorter)" if at + new_blocks < head else ""
            return f"revert {head}->{at}+{new_blocks}{shorter}"
        action = "reorg"
    if action in ("reorg", "empty_reorg") and head - lowest >= 1:
        most = min(64, head - lowest)
        depth = rng.choice([rng.randint(1, min(4, most)), rng.randint(1, most)])
        txs = 0 if action == "empty_reorg" else rng.randint(1, 6)
        pairs = dev.activity.replacements(depth, txs=txs) if txs else []
        reorg_checked(rpc, depth, pairs)
        # anvil cannot revert to a snapshot taken in a block that a reorg replaced
        snapshots[:] = [s for s in snapshots if s[1] <= head - depth]
        return f"{action} {depth} txs={len(pairs)} at {head}"
    if action == "backfill":
        start = rng.randint(max(dev.chain.factory_block, head - 12), head)
        await backfill(p, start, head, head=head, concurrency=2)
        return f"backfill {start}..{head}"
    blocks = rng.randint(1, 4)
    dev.activity.blocks(blocks)
    return f"activity {blocks} at {head}"


# 2. Live following through reorgs of depth 1, 5 and 64.


@pytest.mark.parametrize("depth", [1, 5, 64])
async def test_live_reorg_is_undone_and_the_new_branch_indexed(
    depth: int, database_url: str, fresh_database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=depth, blocks=depth + 4)
    notices: list[dict[str, Any]] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(CHANNEL, lambda *a: notices.append(checked(a[3])))
    try:
        async with open_pipeline(settings_for(database_url, dev.chain)) as p:
            await ensure_checkpoint(p)
            await sync(p)
            head = block_number(dev.rpc)
            before = await snapshot(database_url)
            seen_seq = await _last_seq(database_url)
            counted = _metric("reorgs_total"), _metric("reorg_depth_blocks_sum")
            pairs = dev.activity.replacements(depth, txs=min(depth, 6))
            pairs[0] = (pairs[0][0], 0)  # the first replaced block changes: the fork is exact
            async with _following(p) as caught_up:
                await asyncio.to_thread(reorg_checked, dev.rpc, depth, pairs)
                await caught_up()
                await asyncio.to_thread(dev.activity.blocks, 2)
                await caught_up()
    finally:
        await listener.close()
    await _agrees_with_chain(database_url, dev)
    assert await snapshot(database_url) != before
    reorgs = await fetch(database_url, "select fork_block, depth from indexer_reorgs")
    assert [(r["fork_block"], r["depth"]) for r in reorgs] == [(head - depth, depth)]
    assert _reorg_notice(notices)["forkBlock"] == head - depth
    assert await _stale_not_announced(database_url, before, seen_seq) == set()
    assert (_metric("reorgs_total"), _metric("reorg_depth_blocks_sum")) == (
        counted[0] + 1,
        counted[1] + depth,
    )
    await _same_as_fresh_index(database_url, fresh_database_url, dev)


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(f"{metrics.PREFIX}_{name}") or 0.0


async def _last_seq(url: str) -> int:
    rows = await fetch(url, "select coalesce(max(seq), 0) as seq from indexer_changes")
    return int(rows[0]["seq"])


async def _stale_not_announced(
    url: str, before: dict[str, list[tuple[Any, ...]]], seen_seq: int
) -> set[tuple[str, ...]]:
    """The NFTs and coin balances that changed since `before` but that a backend reading
    the change log on from `seen_seq` would not re-read: the removals' `invalidates`
    lists, plus the rows in the blocks of every batch after them (sql/EVENTS.md)."""
    after = await snapshot(url)

    def keys(table: str) -> set[tuple[str, ...]]:
        changed = set(before[table]) ^ set(after[table])
        return {
            (
                "0x" + bytes(r[1]).hex(),
                str(r[2]) if table == "master_nfts" else "0x" + bytes(r[2]).hex(),
            )
            for r in changed
        }

    stale = keys("master_nfts") | keys("token_holders")
    changes = await fetch(url, "select * from indexer_changes where seq > $1", seen_seq)
    assert any(c["kind"] == "reorg" for c in changes)
    for change in changes:
        if change["invalidates"] is not None:
            listed = orjson.loads(change["invalidates"])
            assert listed["complete"]
            stale -= {tuple(k) for k in listed["nfts"] + listed["coinHolders"]}
        rows = await fetch(
            url,
            "select '0x' || encode(contract_address, 'hex') as a, token_id::text as b "
            "from nft_transfers where block_number between $1 and $2 union "
            "select '0x' || encode(token_address, 'hex'), '0x' || encode(h, 'hex') "
            "from token_transfers, lateral (values (from_address), (to_address)) v(h) "
            "where block_number between $1 and $2",
            change["from_block"],
            change["to_block"],
        )
        stale -= {(r["a"], r["b"]) for r in rows}
    return stale


def _reorg_notice(notices: list[dict[str, Any]]) -> dict[str, Any]:
    found = [n for n in notices if n.get("type") == "indexer.reorg"]
    assert len(found) == 1, notices
    return found[0]


class _following:
    """The real follow driver in a task; `caught_up()` waits until it is at the head."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Callable[[], Awaitable[None]]:
        health = Health(self.p.store, max_lag_blocks=10)
        self.task = asyncio.create_task(
            following(self.p, poll_interval=0.01, stop=self.stop, health=health)
        )
        return self.caught_up

    async def caught_up(self, within: float = 30.0) -> None:
        task = self.task
        assert task is not None

        async def at_the_head() -> bool:
            if await at_head(self.p):
                return True
            if task.done():
                task.result()
                raise AssertionError("the follower stopped")
            return False

        await eventually(at_the_head, within=within, what="the follower at the head", every=0.01)

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task


# 3. A reorg that removes a MasterNFT's deployment.


async def test_reorg_removing_a_master_deployment_removes_its_contract_nfts_and_transfers(
    database_url: str, fresh_database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=3, blocks=3, masters=1, coins=1)
    rpc, activity = dev.rpc, dev.activity
    (master,) = c.masters_deployed(c.transact(rpc, [activity.deploy_op(kind="master")]))
    holder = activity.holders[0]
    c.transact(rpc, [c.nft_mint_batch_tx(activity.admin, master.nft, holder, 5)])
    c.transact(
        rpc, [c.nft_admin_transfer_batch_tx(activity.admin, master.nft, [1, 2], [holder] * 2)]
    )
    c.transact(rpc, [c.deposit_native_tx(activity.admin, master.distributor, 10**6 * 20)])
    c.transact(rpc, [c.claim_batch_tx(activity.admin, master.distributor, 1, [1, 3])])
    depth = block_number(rpc) - master.block + 1
    async with open_pipeline(settings_for(database_url, dev.chain)) as p:
        await ensure_checkpoint(p)
        await sync(p)
        assert await _rows_of(database_url, master.nft, master.distributor) == [1, 1, 5, 7, 1, 2]
        # The factory's next CREATE in the new branch is a coin: it takes the NFT's address.
        coin_tx = activity.deploy_op(kind="coin")
        mint = c.coin_mint_batch_tx(activity.admin, master.nft, [holder], [77])
        reorg_checked(rpc, depth, [(tx_object(coin_tx), 0), (tx_object(mint), 1)])
        await sync(p)
        registry = p.registry(await p.store.position())
        tracked = registry.get(master.nft)
        assert tracked is not None and tracked.kind is ContractKind.ARTIST_COIN
        assert registry.get(master.distributor) is None
    assert await _rows_of(database_url, master.nft, master.distributor) == [0, 0, 0, 0, 0, 0]
    coin = await fetch(
        database_url, "select total_supply from artist_tokens where token_address = $1", master.nft
    )
    assert [r[0] for r in coin] == [77]
    await _agrees_with_chain(database_url, dev)
    await _same_as_fresh_index(database_url, fresh_database_url, dev)


async def _rows_of(database_url: str, nft: bytes, distributor: bytes) -> list[int]:
    """master_contracts, master_nfts holders, master_nfts, nft_transfers, deposits, claims."""
    row = await fetch(
        database_url,
        "select (select count(*) from master_contracts where nft_address = $1),"
        " (select count(distinct owner_address) from master_nfts where contract_address = $1),"
        " (select count(*) from master_nfts where contract_address = $1),"
        " (select count(*) from nft_transfers where contract_address = $1),"
        " (select count(*) from dividend_events where distributor_address = $2),"
        " (select count(*) from dividend_claims where distributor_address = $2)",
        nft,
        distributor,
    )
    return [int(v) for v in row[0]]


# 4. The same transactions re-mined in other blocks of the new branch.


async def test_same_transactions_in_other_blocks_are_neither_lost_nor_duplicated(
    database_url: str, fresh_database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=4, blocks=3)
    rpc = dev.rpc
    async with open_pipeline(settings_for(database_url, dev.chain)) as p:
        await ensure_checkpoint(p)
        await sync(p)
        receipts = dev.activity.blocks(4, txs=3)
        mine(rpc)  # one empty block on top, so that every transaction can move one block up
        await sync(p)
        hashes = [r["transactionHash"] for r in receipts]
        raws = [rpc.call("eth_getRawTransactionByHash", [h]) for h in hashes]
        first, head = int(receipts[0]["blockNumber"], 16), block_number(rpc)
        depth = head - first + 1
        # Later: each transaction one block higher. Then: all of them in the first block.
        for offsets in (_shifted(receipts, first, by=1), [0] * len(raws)):
            reorg_checked(rpc, depth, list(zip(raws, offsets, strict=True)))
            moved = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            assert [m["transactionHash"] for m in moved] == hashes
            assert [m["blockNumber"] for m in moved] != [r["blockNumber"] for r in receipts]
            await sync(p)
            # Exactly the logs of the new branch: each once, at its new block and log index.
            logs = sorted(
                (g["transactionHash"], int(g["blockNumber"], 16), int(g["logIndex"], 16))
                for m in moved
                for g in m["logs"]
            )
            assert await _rows_of_txs(database_url, hashes) == logs
            receipts = moved
    await _agrees_with_chain(database_url, dev)
    await _same_as_fresh_index(database_url, fresh_database_url, dev)


def _shifted(receipts: list[dict[str, Any]], first: int, *, by: int) -> list[int]:
    return [int(r["blockNumber"], 16) - first + by for r in receipts]


_RAW_OF_TXS = " union all ".join(
    f"select tx_hash, block_number, log_index from {table} where tx_hash = any($1)"
    for table in TABLE_NAMES
)


async def _rows_of_txs(database_url: str, hashes: list[str]) -> list[tuple[str, int, int]]:
    """(tx hash, block number, log index) of every raw row these transactions left, sorted."""
    found = await fetch(database_url, _RAW_OF_TXS, [bytes.fromhex(h[2:]) for h in hashes])
    return sorted(("0x" + bytes(r[0]).hex(), r[1], r[2]) for r in found)


# 5-7. The daemon: a reorg deeper than the window, a reorg while stopped, SIGKILL.


async def _daemon_synced(
    url: str, dev: Devchain, daemon: subprocess.Popen[bytes], log: Path, within: float = 60.0
) -> None:
    """Wait until the daemon's checkpoint is the node's head block; fail if it exits."""

    async def synced() -> bool:
        if await _checkpoint_is_head(url, dev.rpc):
            return True
        if daemon.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.returncode}:\n{_tail(log)}")
        return False

    await eventually(
        synced, within=within, what=lambda: f"the daemon at the head:\n{_tail(log)}", every=0.02
    )


async def _checkpoint_is_head(url: str, rpc: RpcClient) -> bool:
    rows = await fetch(url, "select block_hash from indexer_checkpoints")
    head = rpc.call("eth_getBlockByNumber", ["latest", False])
    return bool(rows) and "0x" + bytes(rows[0][0]).hex() == head["hash"]


async def _reorg_count(url: str) -> int:
    return int((await fetch(url, "select count(*) from indexer_reorgs"))[0][0])


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _replacements(dev: Devchain, depth: int, txs: int) -> list[tuple[dict[str, str], int]]:
    """Replacement txs with one in the first replaced block, so the fork is exactly `depth`."""
    pairs = dev.activity.replacements(depth, txs=txs)
    pairs[0] = (pairs[0][0], 0)
    return pairs


async def test_reorg_deeper_than_the_window_stops_the_daemon_until_the_documented_rewind(
    database_url: str, devchains: list[Devchain], tmp_path: Path
) -> None:
    dev = _chain(devchains, seed=5, blocks=12)
    window = 4
    env = indexer_env(
        database_url, dev.chain, AUDIFI_REORG_WINDOW=str(window), AUDIFI_POLL_INTERVAL="0.02"
    )
    log = tmp_path / "run.log"
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        await _daemon_synced(database_url, dev, daemon, log)
        before = await snapshot(database_url)
        head, depth = block_number(dev.rpc), 2 * window + 1
        await asyncio.to_thread(reorg_checked, dev.rpc, depth, _replacements(dev, depth, 4))
        code = await asyncio.to_thread(wait_exit, daemon, 30)
    fork = head - depth
    text = _tail(log)
    assert code == 1, text
    below = int(text.split("forked below block ")[1].split(",")[0])
    assert fork < below <= head - window + 1, text
    assert "`audifi-indexer rewind --to-block N` with N below the fork" in text
    assert await snapshot(database_url) == before, "nothing is half-undone"
    assert await _reorg_count(database_url) == 0
    command = [*INDEXER, "rewind", "--to-block", str(fork - 1)]
    rewind = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, timeout=60
    )
    assert rewind.returncode == 0, rewind.stderr.decode()[-2000:]
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        await _daemon_synced(database_url, dev, daemon, log)
    await _agrees_with_chain(database_url, dev)


async def test_reorg_while_the_daemon_is_stopped_is_repaired_on_restart(
    database_url: str, fresh_database_url: str, devchains: list[Devchain], tmp_path: Path
) -> None:
    dev = _chain(devchains, seed=6, blocks=10)
    env = indexer_env(database_url, dev.chain, AUDIFI_POLL_INTERVAL="0.02")
    log = tmp_path / "run.log"
    # Same height (only the tip's hash shows it); a few new blocks on top of the fork; so
    # many that the restart catches up in bulk first, from a checkpoint on the lost branch.
    for grow in (None, 0, 3, CATCH_UP_MIN_BLOCKS + 200):
        if grow is not None:
            reorg_checked(dev.rpc, 6, _replacements(dev, 6, 4))
            if grow > 2:
                mine(dev.rpc, grow - 2)
            dev.activity.blocks(min(grow, 2))
        with running_indexer(["run"], env, log_path=str(log)) as daemon:
            await _daemon_synced(database_url, dev, daemon, log)
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(wait_exit, daemon, 15) == 0, _tail(log)
        caught_up = '"event": "catch_up"' in log.read_text()
        assert caught_up == (grow is not None and grow > CATCH_UP_MIN_BLOCKS), _tail(log)
        await _agrees_with_chain(database_url, dev)
    assert await _reorg_count(database_url) == 3
    await _same_as_fresh_index(database_url, fresh_database_url, dev)


async def test_sigkill_while_handling_reorgs_then_restart_recovers(
    database_url: str, fresh_database_url: str, devchains: list[Devchain], tmp_path: Path
) -> None:
    dev = _chain(devchains, seed=7, blocks=20)
    # One block per step, so re-indexing a new branch takes several commits to kill between.
    env = indexer_env(
        database_url,
        dev.chain,
        AUDIFI_POLL_INTERVAL="0.02",
        AUDIFI_GETLOGS_INITIAL_RANGE="1",
        AUDIFI_GETLOGS_MAX_RANGE="1",
    )
    log = tmp_path / "run.log"
    rng = random.Random(7)
    mid_reorg = 0
    for moment in ("reorg_sent", "rewound", "new_branch", "rewound", "new_branch"):
        with running_indexer(["run"], env, log_path=str(log)) as daemon:
            await _daemon_synced(database_url, dev, daemon, log)
            reorgs = await _reorg_count(database_url)
            depth = rng.randint(3, 12)
            fork = block_number(dev.rpc) - depth
            await asyncio.to_thread(reorg_checked, dev.rpc, depth, _replacements(dev, depth, 6))
            await _until(functools.partial(_reached, moment, database_url, reorgs, fork), daemon)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)
            mid_reorg += not await _checkpoint_is_head(database_url, dev.rpc)
    assert mid_reorg >= 3, "the kills should land while a reorg is being handled"
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        await _daemon_synced(database_url, dev, daemon, log)
    await _agrees_with_chain(database_url, dev)
    await _same_as_fresh_index(database_url, fresh_database_url, dev)


async def _reached(moment: str, url: str, reorgs: int, fork: int) -> bool:
    """reorg_sent: at once; rewound: the rewind committed; new_branch: a block of it too."""
    if moment == "reorg_sent":
        return True
    if await _reorg_count(url) <= reorgs:
        return False
    rows = await fetch(url, "select block_number from indexer_checkpoints")
    return moment == "rewound" or rows[0][0] > fork


async def _until(
    condition: Callable[[], Awaitable[bool]], daemon: subprocess.Popen[bytes], within: float = 30
) -> None:
    async def now() -> bool:
        if await condition():
            return True
        assert daemon.poll() is None, f"daemon exited {daemon.returncode}"
        return False

    await eventually(now, within=within, what="the moment to kill", every=0.002)


# 8. Only a different hash is a reorg: a lagging node is waited out; a shorter fork is not.


async def test_a_node_lagging_behind_the_checkpoint_is_waited_out_and_nothing_is_deleted(
    database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=8, blocks=8)
    async with RpcProxy(dev.chain.url) as proxy:
        settings = load_settings(
            database_url=database_url,
            rpc_url=proxy.url,
            factory_address="0x" + dev.chain.factory.hex(),
        )
        async with open_pipeline(settings) as p:
            await ensure_checkpoint(p)
            await sync(p)
            checkpoint, before = await p.store.checkpoint(), await snapshot(database_url)
            proxy.lagging(3)
            for _ in range(5):
                result = await step(p)
                assert isinstance(result, StepResult), result
                assert result.outcome is Outcome.WAITING
                assert result.head == checkpoint.number - 3 if checkpoint else False
            assert await p.store.checkpoint() == checkpoint
            assert await snapshot(database_url) == before
            # Two replicas behind a load balancer, one 4 blocks behind, while blocks arrive.
            proxy.lagging(0)
            proxy.flapping_head(4)
            for _ in range(4):
                dev.activity.blocks(1)
                for _ in range(4):
                    await step(p)
            proxy.flapping_head(0)
            await sync(p)
    assert await _reorg_count(database_url) == 0
    await _agrees_with_chain(database_url, dev)


async def test_a_fork_onto_a_shorter_branch_is_a_reorg_not_a_lag(
    database_url: str, fresh_database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=9, blocks=4)
    rpc = dev.rpc
    async with open_pipeline(settings_for(database_url, dev.chain)) as p:
        await ensure_checkpoint(p)
        await sync(p)
        fork, saved = block_number(rpc), evm_snapshot(rpc)
        dev.activity.blocks(6)
        await sync(p)
        assert revert(rpc, saved)
        dev.activity.blocks(2)  # the new head is 4 below the checkpoint, with another hash
        await sync(p, within=10)
    reorgs = await fetch(database_url, "select fork_block, depth from indexer_reorgs")
    assert [(r["fork_block"], r["depth"]) for r in reorgs] == [(fork, 6)]
    await _agrees_with_chain(database_url, dev)
    await _same_as_fresh_index(database_url, fresh_database_url, dev)


async def test_backfill_over_the_tip_then_its_transaction_re_mined_one_block_earlier(
    database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=10, blocks=3)
    rpc, activity = dev.rpc, dev.activity
    coin = read_view(rpc, dev.chain.factory, block_number(rpc)).coins[0].token
    async with open_pipeline(settings_for(database_url, dev.chain)) as p:
        await ensure_checkpoint(p)
        await sync(p)
        saved = evm_snapshot(rpc)
        mine(rpc)
        (receipt,) = c.transact(
            rpc, [c.coin_mint_batch_tx(activity.admin, coin, [activity.holders[0]], [5])]
        )
        tip = int(receipt["blockNumber"], 16)
        await backfill(p, tip, tip, head=tip, concurrency=1)  # the follower is 2 blocks behind
        # The fork: the same transaction, one block earlier (same hash and log index).
        raw = rpc.call("eth_getRawTransactionByHash", [receipt["transactionHash"]])
        assert revert(rpc, saved)
        rpc.call("eth_sendRawTransaction", [raw])
        mine(rpc)
        await sync(p)
        mine(rpc)
        await sync(p)
    await _agrees_with_chain(database_url, dev)


async def test_reorg_deeper_than_the_window_is_fatal_counted_and_deletes_nothing(
    database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=11, blocks=12)
    before, too_deep = await _too_deep(database_url, dev)
    assert _metric("reorgs_too_deep_total") == before + 1
    head = block_number(dev.rpc)
    assert head - 4 <= too_deep.fork_below <= head - 3  # the window is the newest 4 (or 5)


async def _too_deep(database_url: str, dev: Devchain) -> tuple[float, ReorgTooDeep]:
    """Follow with a 4-block window, reorg 9 deep, step into the error."""
    async with open_pipeline(settings_for(database_url, dev.chain, reorg_window=4)) as p:
        await ensure_checkpoint(p)
        await sync(p)
        indexed = await snapshot(database_url)
        reorg_checked(dev.rpc, 9, _replacements(dev, 9, 4))
        counted = _metric("reorgs_too_deep_total")
        with pytest.raises(ReorgTooDeep) as too_deep:
            await sync(p)
    assert await snapshot(database_url) == indexed
    assert await _reorg_count(database_url) == 0
    return counted, too_deep.value


async def test_rewind_below_the_block_the_too_deep_error_names_leaves_no_orphan(
    database_url: str, devchains: list[Devchain]
) -> None:
    dev = _chain(devchains, seed=11, blocks=12)
    _, too_deep = await _too_deep(database_url, dev)
    settings = settings_for(database_url, dev.chain)
    try:
        await run_rewind(settings, too_deep.fork_below - 1)
    except Fatal as refused:  # the fork is lower still: the refusal names a safe block
        safe = re.search(r"--to-block (\d+)", str(refused))
        assert safe is not None, str(refused)
        await run_rewind(settings, int(safe.group(1)))
    await follow_to_head(database_url, dev.chain, reorg_window=4)
    await _agrees_with_chain(database_url, dev)
