"""Helpers for the reorg tests: a small chain, activity planned from what the chain says
now (so it stays valid across reorgs and reverts), forks, and in-process following.

The devchain Workload keeps a model of the chain that a reorg silently invalidates; the
`Activity` here keeps none. Every call reads the contracts' state at one block and plans
transactions on distinct contracts, so their order inside or across blocks does not matter
(which is what replacement transactions of `anvil_reorg` need).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from indexer.backfill import backfill
from indexer.devchain import contracts as c
from indexer.devchain.anvil import block_number, dev_accounts, mine, reorg, start_anvil
from indexer.devchain.oracle import eth_calls
from indexer.devchain.rpc import RpcClient, RpcError
from indexer.errors import Retryable
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.step import Outcome, Pipeline, StepResult, follow_step
from tests.helpers.chain import Chain, settings_for
from tests.helpers.chainstate import INDEXED_TABLES, snapshot
from tests.helpers.polling import eventually

TxPairs = list[tuple[dict[str, str], int]]


@dataclass(slots=True)
class MasterView:
    nft: bytes
    distributor: bytes
    supply: int
    minted: int = 0
    owners: dict[int, bytes] = field(default_factory=dict)  # live tokens only
    dividends: int = 0
    unclaimed: list[int] = field(default_factory=list)  # live tokens, latest dividend


@dataclass(slots=True)
class CoinView:
    token: bytes
    balances: dict[bytes, int] = field(default_factory=dict)


@dataclass(slots=True)
class ChainView:
    masters: list[MasterView]
    coins: list[CoinView]


def _uint(raw: bytes | RpcError) -> int:
    if isinstance(raw, RpcError):
        raise raw
    return int.from_bytes(raw[:32], "big")


def read_view(rpc: RpcClient, factory: bytes, block: int) -> ChainView:
    """The AudiFi state at `block` as far as planning valid transactions needs it."""
    call = c.encode_call
    n_masters, n_coins = (
        _uint(r)
        for r in eth_calls(
            rpc, [(factory, call("mastersCount()")), (factory, call("artistCoinsCount()"))], block
        )
    )
    refs = eth_calls(
        rpc,
        [(factory, call("masterAt(uint256)", i)) for i in range(n_masters)]
        + [(factory, call("artistCoinAt(uint256)", i)) for i in range(n_coins)],
        block,
    )
    masters = []
    for raw in refs[:n_masters]:
        assert isinstance(raw, bytes)
        _, nft, distributor, supply = decode(["bytes16", "address", "address", "uint256"], raw)
        masters.append(MasterView(_addr(nft), _addr(distributor), supply))
    coins = []
    for raw in refs[n_masters:]:
        assert isinstance(raw, bytes)
        coins.append(CoinView(_addr(decode(["bytes16", "address"], raw)[1])))
    _read_masters(rpc, masters, block)
    _read_coins(rpc, coins, holders(rpc), block)
    return ChainView(masters, coins)


def _read_masters(rpc: RpcClient, masters: list[MasterView], block: int) -> None:
    counts = eth_calls(
        rpc,
        [(m.nft, c.encode_call("minted()")) for m in masters]
        + [(m.distributor, c.encode_call("dividendsCount()")) for m in masters],
        block,
    )
    for i, m in enumerate(masters):
        m.minted, m.dividends = _uint(counts[i]), _uint(counts[len(masters) + i])
    ids = [(m, t) for m in masters for t in range(1, m.minted + 1)]
    owners = eth_calls(rpc, [(m.nft, c.encode_call("ownerOf(uint256)", t)) for m, t in ids], block)
    for (m, t), raw in zip(ids, owners, strict=True):
        if isinstance(raw, bytes):
            m.owners[t] = raw[-20:]
    live = [(m, t) for m in masters if m.dividends for t in m.owners]
    claimed = eth_calls(
        rpc,
        [
            (m.distributor, c.encode_call("claimed(uint256,uint256)", m.dividends, t))
            for m, t in live
        ],
        block,
    )
    for (m, t), raw in zip(live, claimed, strict=True):
        if not _uint(raw):
            m.unclaimed.append(t)


def _read_coins(rpc: RpcClient, coins: list[CoinView], owners: list[bytes], block: int) -> None:
    pairs = [(coin, h) for coin in coins for h in owners]
    results = eth_calls(
        rpc, [(coin.token, c.encode_call("balanceOf(address)", h)) for coin, h in pairs], block
    )
    for (coin, h), raw in zip(pairs, results, strict=True):
        coin.balances[h] = _uint(raw)


def _addr(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def holders(rpc: RpcClient) -> list[bytes]:
    """Who receives NFTs and coins: a few dev accounts and a few addresses nobody controls."""
    return dev_accounts(rpc)[1:5] + [keccak(f"reorg-holder:{i}".encode())[-20:] for i in range(3)]


class Activity:
    """Valid AudiFi transactions from the factory owner (dev account 0), planned from the
    chain's state at a block, each on a different contract."""

    def __init__(self, rpc: RpcClient, factory: bytes, rng: random.Random) -> None:
        self.rpc = rpc
        self.factory = factory
        self.rng = rng
        self.admin = dev_accounts(rpc)[0]
        self.holders = holders(rpc)

    def blocks(self, n: int, *, txs: int = 3) -> list[c.Receipt]:
        """Mine `n` blocks of up to `txs` transactions each (at least one per block)."""
        receipts: list[c.Receipt] = []
        for _ in range(n):
            view = read_view(self.rpc, self.factory, block_number(self.rpc))
            planned = self.plan(view, self.rng.randint(1, txs))
            receipts += c.transact(self.rpc, planned)
        return receipts

    def replacements(self, depth: int, *, txs: int) -> TxPairs:
        """Transactions for `anvil_reorg(depth)`, valid on the fork's common ancestor."""
        ancestor = block_number(self.rpc) - depth
        planned = self.plan(read_view(self.rpc, self.factory, ancestor), txs)
        offsets = sorted(self.rng.randrange(depth) for _ in planned)
        return [(tx_object(tx), offset) for tx, offset in zip(planned, offsets, strict=True)]

    def plan(self, view: ChainView, n: int) -> list[c.Tx]:
        subjects: list[Any] = [*view.masters, *view.coins, self.factory, self.factory]
        chosen = self.rng.sample(subjects, k=min(n, len(subjects)))
        out = []
        for subject in chosen:
            if isinstance(subject, MasterView):
                out.append(self._master_op(subject))
            elif isinstance(subject, CoinView):
                out.append(self._coin_op(subject))
            else:
                out.append(self.deploy_op())
        return out

    def deploy_op(self, *, kind: str | None = None) -> c.Tx:
        rng = self.rng
        new_id = uuid.UUID(bytes=rng.randbytes(16), version=4).bytes
        if (kind or rng.choice(("master", "coin"))) == "master":
            return c.deploy_master_tx(self.admin, self.factory, new_id, rng.randint(12, 30))
        symbol = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3))
        return c.deploy_artist_coin_tx(self.admin, self.factory, new_id, symbol, 18)

    def _master_op(self, m: MasterView) -> c.Tx:
        rng, admin = self.rng, self.admin
        live = sorted(m.owners)
        options = ["deposit"]
        if m.minted < m.supply:
            options += ["mint"] * 3
        if live:
            options += ["transfer"] * 3
        if len(live) > 3:
            options.append("burn")
        if m.unclaimed:
            options += ["claim"] * 2
        op = rng.choice(options)
        if op == "mint":
            count = rng.randint(1, min(6, m.supply - m.minted))
            return c.nft_mint_batch_tx(admin, m.nft, rng.choice(self.holders), count)
        if op == "transfer":
            ids = rng.sample(live, k=rng.randint(1, min(4, len(live))))
            to = [rng.choice(self.holders) for _ in ids]
            return c.nft_admin_transfer_batch_tx(admin, m.nft, ids, to)
        if op == "burn":
            return c.nft_admin_burn_batch_tx(admin, m.nft, rng.sample(live, k=1))
        if op == "claim":
            ids = rng.sample(m.unclaimed, k=rng.randint(1, min(5, len(m.unclaimed))))
            return c.claim_batch_tx(admin, m.distributor, m.dividends, ids)
        return c.deposit_native_tx(admin, m.distributor, rng.randint(1, 10**6) * m.supply)

    def _coin_op(self, coin: CoinView) -> c.Tx:
        rng, admin = self.rng, self.admin
        rich = [h for h, b in coin.balances.items() if b > 0]
        op = rng.choice(["mint", "transfer", "transfer", "burn"] if rich else ["mint"])
        if op == "mint":
            to = rng.sample(self.holders, k=rng.randint(1, 3))
            return c.coin_mint_batch_tx(admin, coin.token, to, [rng.randint(1, 10**20) for _ in to])
        source = rng.choice(rich)
        amount = rng.randint(1, coin.balances[source])
        if op == "burn":
            return c.coin_admin_burn_batch_tx(admin, coin.token, [source], [amount])
        to = rng.choice(self.holders)  # sometimes the source itself: nets to zero
        return c.coin_admin_transfer_batch_tx(admin, coin.token, [source], [to], [amount])


def tx_object(tx: c.Tx) -> dict[str, str]:
    """A transaction request without a nonce: anvil numbers replacements itself."""
    out = {"from": c.hex_address(tx.sender), "data": "0x" + tx.data.hex(), "gas": hex(tx.gas)}
    if tx.to is not None:
        out["to"] = c.hex_address(tx.to)
    if tx.value:
        out["value"] = hex(tx.value)
    return out


def reorg_checked(rpc: RpcClient, depth: int, pairs: Sequence[tuple[Any, int]] = ()) -> None:
    """`anvil_reorg`, then check every replacement was included and succeeded (anvil drops
    invalid ones silently)."""
    head = block_number(rpc)
    reorg(rpc, depth, pairs)
    assert block_number(rpc) == head, "anvil_reorg keeps the height"
    blocks = rpc.batch(
        [("eth_getBlockByNumber", [hex(n), False]) for n in range(head - depth + 1, head + 1)]
    )
    hashes = [h for b in blocks for h in b["transactions"]]
    assert len(hashes) == len(pairs), f"{len(pairs) - len(hashes)} replacements were dropped"
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    assert all(r["status"] == "0x1" for r in receipts), "a replacement reverted"


@dataclass(slots=True)
class Devchain:
    """A fresh anvil with the factory, a few masters and coins, and some activity."""

    chain: Chain
    rpc: RpcClient
    activity: Activity

    def stop(self) -> None:
        self.rpc.close()
        self.chain.anvil.stop()


def new_devchain(*, seed: int, blocks: int, masters: int = 3, coins: int = 3) -> Devchain:
    anvil = start_anvil(no_mining=True)
    try:
        rpc = RpcClient(anvil.url)
        admin = dev_accounts(rpc)[0]
        mine(rpc, 2)
        factory = c.deploy_factory(rpc, admin)
        activity = Activity(rpc, factory.address, random.Random(seed))
        deploys = [activity.deploy_op(kind="master") for _ in range(masters)]
        deploys += [activity.deploy_op(kind="coin") for _ in range(coins)]
        c.transact(rpc, deploys)
        activity.blocks(blocks)
    except BaseException:
        anvil.stop()
        raise
    chain = Chain(anvil=anvil, factory=factory.address, factory_block=factory.block)
    return Devchain(chain=chain, rpc=rpc, activity=activity)


# In-process following.


async def step(p: Pipeline) -> StepResult | Retryable:
    """One follow step; a Retryable error (e.g. anvil mid-reorg) is returned, not raised."""
    try:
        return await follow_step(p)
    except Retryable as e:
        return e


async def sync(p: Pipeline, *, within: float = 30.0) -> list[StepResult]:
    """Step until the checkpoint is the node's head block (same number and hash); fails
    the test if it is not after `within` seconds. Returns every step's result."""
    results: list[StepResult] = []
    last: list[StepResult | Retryable] = []

    async def stepped_to_the_head() -> bool:
        result = await step(p)
        last[:] = [result]
        if not isinstance(result, StepResult):
            return False  # the node is mid-reorg or behind: poll, do not spin
        results.append(result)
        return result.outcome is Outcome.IDLE and await at_head(p)

    await eventually(
        stepped_to_the_head,
        within=within,
        what=lambda: f"the checkpoint at the head; last step: {last[-1]!r}",
        every=0.005,
    )
    return results


async def at_head(p: Pipeline) -> bool:
    checkpoint = await p.store.checkpoint()
    head = await p.source.head()
    header = (await p.source.headers([head]))[head]
    return checkpoint is not None and header is not None and checkpoint.hash == header.hash


async def follow_to_head(database_url: str, chain: Chain, **settings: Any) -> None:
    async with open_pipeline(settings_for(database_url, chain, **settings)) as p:
        await ensure_checkpoint(p)
        await sync(p)


async def backfilled(database_url: str, chain: Chain) -> dict[str, list[tuple[Any, ...]]]:
    """Index the whole current chain from scratch into `database_url`; its snapshot."""
    async with open_pipeline(settings_for(database_url, chain)) as p:
        head = await p.source.head()
        await backfill(p, chain.factory_block, head, head=head, concurrency=2)
    return await snapshot(database_url)


# What the database says against what the node says.

# Every table whose rows name the block they came from (the indexer's own list is not used).
BLOCK_TABLES = (
    *(t for t, columns in INDEXED_TABLES.items() if "block_hash" in columns),
    "indexer_quarantine",
    "indexer_blocks",
)


async def orphans(database_url: str, rpc: RpcClient) -> list[str]:
    """Raw rows and window blocks stored under a hash the node does not have at that height."""
    conn = await asyncpg.connect(database_url)
    try:
        stored: list[tuple[str, int, bytes]] = []
        for table in BLOCK_TABLES:
            rows = await conn.fetch(f"select distinct block_number, block_hash from {table}")
            stored += [(table, r[0], bytes(r[1])) for r in rows]
    finally:
        await conn.close()
    numbers = sorted({n for _, n, _ in stored})
    found = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    node = {
        n: bytes.fromhex(b["hash"][2:]) if b else None for n, b in zip(numbers, found, strict=True)
    }
    return [
        f"{table}: block {n} stored as 0x{h.hex()}, node has {node[n] and node[n].hex()}"
        for table, n, h in stored
        if node[n] != h
    ]


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
