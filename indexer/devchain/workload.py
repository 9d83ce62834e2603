"""A seeded, deterministic AudiFi workload on a dev chain: many events, few blocks.

The generator keeps its own model of the chain (model.py) so that every transaction it
sends is valid; no transaction reads the chain to decide what to do. Hence the same seed on
the same starting chain sends the same transactions and produces the same events in the
same order. Blocks are packed: `txs_per_block` batch transactions, each emitting up to
`max_events_per_tx` events, then one `evm_mine`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils.crypto import keccak

from indexer.devchain import contracts as c
from indexer.devchain.anvil import dev_accounts
from indexer.devchain.model import DEFAULT_MIX, PLANNERS, CoinState, Kind, MasterState, Model, Op
from indexer.devchain.rpc import RpcClient

__all__ = ["DEFAULT_MIX", "Kind", "Summary", "Workload", "WorkloadConfig", "WorkloadError"]


class WorkloadError(RuntimeError):
    """The chain did not do what the model predicted (a bug in the model or the contracts)."""


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    seed: int = 0
    masters: int = 13
    artists: int = 13
    mix: Mapping[Kind, int] = field(default_factory=lambda: DEFAULT_MIX)
    max_events_per_tx: int = 250  # 300 is the most that fits EIP-7825's per-tx gas cap
    txs_per_block: int = 8
    master_supply: tuple[int, int] = (100, 2000)
    synthetic_holders: int = 200
    # Each coin's first mint near 2**255, so that tests see amounts at NUMERIC(78,0)'s
    # edge; off for the demo, where realistic (18-decimal) amounts read better.
    huge_first_mint: bool = True
    # False when the node mines by itself (automine or --block-time).
    mine_blocks: bool = True


@dataclass(frozen=True, slots=True)
class Summary:
    """What one call produced; counts are events per Kind value."""

    counts: dict[str, int]
    events: int
    txs: int
    first_block: int
    last_block: int
    factory: bytes
    factory_block: int


class Workload:
    """Drives one seeded workload on a chain; `setup` once, then `round(k)` as often as wanted.

    The model advances as transactions are planned: after any error the Workload no longer
    matches the chain and must be discarded. Calls block; from async code use
    `await asyncio.to_thread(workload.round, k)`.
    """

    def __init__(
        self,
        rpc: RpcClient,
        config: WorkloadConfig | None = None,
        *,
        factory: c.Deployment | None = None,
    ) -> None:
        self.rpc = rpc
        self.config = config or WorkloadConfig()
        self.factory = factory
        self._rng = random.Random(self.config.seed)
        self._model: Model | None = None
        unknown = set(self.config.mix) - set(PLANNERS)
        if unknown:
            raise ValueError(f"not transaction kinds: {sorted(unknown)}")
        self._kinds = [k for k, w in self.config.mix.items() if w > 0]
        self._weights = [self.config.mix[k] for k in self._kinds]

    @property
    def masters(self) -> list[c.Master]:
        return [m.ref for m in self._require_model().masters]

    @property
    def coins(self) -> list[c.ArtistCoinRef]:
        return [coin.ref for coin in self._require_model().coins]

    def run(self, events: int) -> Summary:
        """Sets up if needed, then produces at least `events` events in total."""
        first = self.setup() if self._model is None else None
        more = self.round(max(1, events - (first.events if first else 0)))
        return _merge(first, more) if first else more

    def setup(self) -> Summary:
        """Deploys the factory (unless given) and the configured masters and artist coins."""
        if self._model is not None:
            raise WorkloadError("setup() already ran")
        accounts = dev_accounts(self.rpc)
        admin = accounts[0]
        if self.factory is None:
            self.factory = c.deploy_factory(self.rpc, admin, mine_blocks=self.config.mine_blocks)
        else:
            (owner,) = c.view(self.rpc, self.factory.address, "owner()", ["address"])
            admin = c.address_from_hex(owner)
        model = Model(
            self._rng,
            admin=admin,
            payers=accounts[1:] or accounts,
            holders=accounts[1:] + _synthetic_holders(self.config),
            huge_first_mint=self.config.huge_first_mint,
        )
        txs = self._deploy_txs(admin, self.factory.address)
        receipts = c.transact(self.rpc, txs, mine_blocks=self.config.mine_blocks)
        model.masters = [MasterState(m) for m in c.masters_deployed(receipts)]
        model.coins = [CoinState(coin) for coin in c.artist_coins_deployed(receipts)]
        self._model = model
        counts = {Kind.MASTER_DEPLOYED.value: len(model.masters)}
        counts[Kind.ARTIST_COIN_DEPLOYED.value] = len(model.coins)
        return self._summary(counts, len(receipts), receipts)

    def round(self, events: int) -> Summary:
        """At least `events` more events, continuing from the current state (live mode).

        Each block gets up to txs_per_block txs; any tx that reverts or emits other than the
        predicted events raises (TxFailed, WorkloadError).
        """
        counts: dict[str, int] = {}
        receipts: list[c.Receipt] = []
        produced = 0
        while produced < events:
            ops = self._plan_block(events - produced)
            block_receipts = c.transact(
                self.rpc, [op.tx for op in ops], mine_blocks=self.config.mine_blocks
            )
            for op, receipt in zip(ops, block_receipts, strict=True):
                if len(receipt["logs"]) != op.events:
                    raise WorkloadError(
                        f"{op.kind} tx {receipt['transactionHash']} emitted "
                        f"{len(receipt['logs'])} events, expected {op.events}"
                    )
                counts[op.kind.value] = counts.get(op.kind.value, 0) + op.events
                produced += op.events
            receipts.extend(block_receipts)
        return self._summary(counts, len(receipts), receipts)

    def expected_nft_owners(self) -> dict[bytes, dict[int, bytes]]:
        """The model's owner of every live token, per NFT contract (to cross-check the oracle)."""
        return {m.ref.nft: dict(m.owners) for m in self._require_model().masters}

    def expected_coin_balances(self) -> dict[bytes, dict[bytes, int]]:
        """The model's balance of every address that ever held each coin, zeros included."""
        return {coin.ref.token: dict(coin.balances) for coin in self._require_model().coins}

    def _require_model(self) -> Model:
        if self._model is None:
            raise WorkloadError("call setup() or run() first")
        return self._model

    def _deploy_txs(self, admin: bytes, factory: bytes) -> list[c.Tx]:
        rng, cfg = self._rng, self.config
        txs = []
        for _ in range(cfg.masters):
            supply = rng.randint(*cfg.master_supply)
            txs.append(c.deploy_master_tx(admin, factory, _uuid_bytes(rng), supply))
        for _ in range(cfg.artists):
            symbol = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
            decimals = rng.choice((18, 18, 18, 6, 8, 0))
            txs.append(c.deploy_artist_coin_tx(admin, factory, _uuid_bytes(rng), symbol, decimals))
        return txs

    def _plan_block(self, budget: int) -> list[Op]:
        """Up to txs_per_block txs emitting at most `budget` events in total."""
        ops: list[Op] = []
        while len(ops) < self.config.txs_per_block and budget > 0:
            op = self._plan_tx(budget)
            ops.append(op)
            budget -= op.events
        return ops

    def _plan_tx(self, budget: int) -> Op:
        model = self._require_model()
        size = self._rng.randint(1, min(self.config.max_events_per_tx, budget))
        for _ in range(100):
            kind = self._rng.choices(self._kinds, self._weights)[0]
            op = model.plan(kind, size)
            if op is not None:
                return op
        raise WorkloadError(f"no valid transaction in the mix {dict(self.config.mix)}")

    def _summary(self, counts: dict[str, int], txs: int, receipts: Sequence[c.Receipt]) -> Summary:
        if self.factory is None:
            raise WorkloadError("call setup() or run() first")
        blocks = [int(r["blockNumber"], 16) for r in receipts] or [self.factory.block]
        return Summary(
            counts=counts,
            events=sum(counts.values()),
            txs=txs,
            first_block=min(blocks),
            last_block=max(blocks),
            factory=self.factory.address,
            factory_block=self.factory.block,
        )


def _merge(a: Summary, b: Summary) -> Summary:
    counts = dict(a.counts)
    for kind, n in b.counts.items():
        counts[kind] = counts.get(kind, 0) + n
    return Summary(
        counts=counts,
        events=a.events + b.events,
        txs=a.txs + b.txs,
        first_block=min(a.first_block, b.first_block),
        last_block=max(a.last_block, b.last_block),
        factory=a.factory,
        factory_block=a.factory_block,
    )


def _uuid_bytes(rng: random.Random) -> bytes:
    """A version-4 UUID drawn from the seeded rng, like the off-chain ids."""
    return uuid.UUID(bytes=rng.randbytes(16), version=4).bytes


def _synthetic_holders(config: WorkloadConfig) -> list[bytes]:
    """Addresses nobody controls, derived from the seed: they only receive and are moved."""
    return [
        keccak(f"audifi-holder:{config.seed}:{i}".encode())[-20:]
        for i in range(config.synthetic_holders)
    ]
