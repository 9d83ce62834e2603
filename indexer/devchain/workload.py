"""A seeded, deterministic AudiFi workload on a dev chain: many events, few blocks.

The generator keeps its own model of the chain (owners, balances, claims) so that every
transaction it sends is valid; no transaction reads the chain to decide what to do. Hence
the same seed on the same starting chain sends the same transactions and produces the same
events in the same order. Blocks are packed: `txs_per_block` batch transactions, each
emitting up to `max_events_per_tx` events, then one `evm_mine`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from eth_utils.crypto import keccak

from indexer.devchain import contracts as c
from indexer.devchain.anvil import dev_accounts
from indexer.devchain.rpc import RpcClient

T = TypeVar("T")
MAX_UINT256 = 2**256 - 1


class Kind(StrEnum):
    """Kinds of events the workload produces (one event each)."""

    MASTER_DEPLOYED = "master_deployed"
    ARTIST_COIN_DEPLOYED = "artist_coin_deployed"
    NFT_MINT = "nft_mint"
    NFT_TRANSFER = "nft_transfer"
    NFT_BURN = "nft_burn"
    COIN_MINT = "coin_mint"
    COIN_TRANSFER = "coin_transfer"
    COIN_BURN = "coin_burn"
    DEPOSIT_NATIVE = "deposit_native"
    DEPOSIT_TOKEN = "deposit_token"
    CLAIM = "claim"


# Relative weights of each kind of transaction; deposits are rare, as in life.
DEFAULT_MIX: Mapping[Kind, int] = MappingProxyType(
    {
        Kind.NFT_MINT: 12,
        Kind.NFT_TRANSFER: 20,
        Kind.NFT_BURN: 3,
        Kind.COIN_MINT: 12,
        Kind.COIN_TRANSFER: 25,
        Kind.COIN_BURN: 4,
        Kind.DEPOSIT_NATIVE: 2,
        Kind.DEPOSIT_TOKEN: 2,
        Kind.CLAIM: 15,
    }
)


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


class _Bag(Generic[T]):
    """A list with O(1) add/remove and seeded random choice; iteration order is stable."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._index: dict[T, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: T) -> bool:
        return item in self._index

    def add(self, item: T) -> None:
        if item not in self._index:
            self._index[item] = len(self.items)
            self.items.append(item)

    def remove(self, item: T) -> None:
        i = self._index.pop(item)
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self._index[last] = i

    def choice(self, rng: random.Random) -> T:
        return self.items[rng.randrange(len(self.items))]


@dataclass(slots=True)
class _MasterState:
    ref: c.Master
    minted: int = 0
    owners: dict[int, bytes] = field(default_factory=dict)
    live: _Bag[int] = field(default_factory=_Bag)
    claimed: list[set[int]] = field(default_factory=list)  # per dividend id - 1


@dataclass(slots=True)
class _CoinState:
    ref: c.ArtistCoinRef
    supply: int = 0
    balances: dict[bytes, int] = field(default_factory=dict)
    nonzero: _Bag[bytes] = field(default_factory=_Bag)


@dataclass(frozen=True, slots=True)
class _Op:
    kind: Kind
    tx: c.Tx
    events: int


class _Model:
    """The workload's view of the chain and the planners that keep every tx valid."""

    def __init__(
        self, rng: random.Random, *, admin: bytes, payers: list[bytes], holders: list[bytes]
    ) -> None:
        self.rng = rng
        self.admin = admin
        self.payers = payers
        self.holders = holders
        self.masters: list[_MasterState] = []
        self.coins: list[_CoinState] = []

    def plan(self, kind: Kind, size: int) -> _Op | None:
        """One tx of `kind` emitting at most `size` events, or None if none is valid now."""
        return _PLANNERS[kind](self, size)

    def holder(self) -> bytes:
        return self.holders[self.rng.randrange(len(self.holders))]

    def nft_mint(self, size: int) -> _Op | None:
        open_ = [m for m in self.masters if m.minted < m.ref.total_supply]
        if not open_:
            return None
        m = open_[self.rng.randrange(len(open_))]
        count = min(size, m.ref.total_supply - m.minted)
        to = self.holder()
        for token_id in range(m.minted + 1, m.minted + count + 1):
            m.owners[token_id] = to
            m.live.add(token_id)
        m.minted += count
        return _Op(Kind.NFT_MINT, c.nft_mint_batch_tx(self.admin, m.ref.nft, to, count), count)

    def nft_transfer(self, size: int) -> _Op | None:
        m = self._master_with_tokens()
        if m is None:
            return None
        ids = [m.live.choice(self.rng) for _ in range(size)]
        to = [self.holder() for _ in ids]
        for token_id, owner in zip(ids, to, strict=True):
            m.owners[token_id] = owner
        tx = c.nft_admin_transfer_batch_tx(self.admin, m.ref.nft, ids, to)
        return _Op(Kind.NFT_TRANSFER, tx, len(ids))

    def nft_burn(self, size: int) -> _Op | None:
        m = self._master_with_tokens()
        if m is None:
            return None
        ids = []
        for _ in range(min(size, len(m.live))):
            token_id = m.live.choice(self.rng)
            m.live.remove(token_id)
            del m.owners[token_id]
            ids.append(token_id)
        return _Op(Kind.NFT_BURN, c.nft_admin_burn_batch_tx(self.admin, m.ref.nft, ids), len(ids))

    def claim(self, size: int) -> _Op | None:
        candidates = [m for m in self.masters if m.claimed and len(m.live) > 0]
        if not candidates:
            return None
        m = candidates[self.rng.randrange(len(candidates))]
        dividend = self.rng.randrange(len(m.claimed))
        claimed = m.claimed[dividend]
        ids: list[int] = []
        for _ in range(4 * size):
            token_id = m.live.choice(self.rng)
            if token_id not in claimed:
                claimed.add(token_id)
                ids.append(token_id)
                if len(ids) == size:
                    break
        if not ids:
            return None
        tx = c.claim_batch_tx(self.admin, m.ref.distributor, dividend + 1, ids)
        return _Op(Kind.CLAIM, tx, len(ids))

    def deposit_native(self, size: int) -> _Op | None:
        m = self.masters[self.rng.randrange(len(self.masters))]
        payer = self.payers[self.rng.randrange(len(self.payers))]
        amount = self.rng.randint(m.ref.total_supply, 10**18)
        m.claimed.append(set())
        tx = c.deposit_native_tx(payer, m.ref.distributor, amount)
        return _Op(Kind.DEPOSIT_NATIVE, tx, 1)

    def deposit_token(self, size: int) -> _Op | None:
        m = self.masters[self.rng.randrange(len(self.masters))]
        token = self.coins[self.rng.randrange(len(self.coins))].ref.token
        payer = self.payers[self.rng.randrange(len(self.payers))]
        # Huge, but 256 such deposits of one token cannot overflow a holder's credit.
        amount = self.rng.randint(1, 2**248)
        m.claimed.append(set())
        tx = c.deposit_token_tx(payer, m.ref.distributor, token, amount)
        return _Op(Kind.DEPOSIT_TOKEN, tx, 1)

    def coin_mint(self, size: int) -> _Op | None:
        coin = self.coins[self.rng.randrange(len(self.coins))]
        to = [self.holder() for _ in range(size)]
        amounts = []
        for holder in to:
            # The first mint of a coin is near 2**255: amounts must survive NUMERIC(78,0).
            big = coin.supply == 0
            amount = 2**255 - self.rng.randrange(2**64) if big else self.rng.randint(1, 10**24)
            amount = min(amount, MAX_UINT256 - coin.supply)
            coin.supply += amount
            self._credit(coin, holder, amount)
            amounts.append(amount)
        tx = c.coin_mint_batch_tx(self.admin, coin.ref.token, to, amounts)
        return _Op(Kind.COIN_MINT, tx, len(to))

    def coin_transfer(self, size: int) -> _Op | None:
        coin = self._coin_with_holders()
        if coin is None:
            return None
        from_, to, amounts = [], [], []
        for _ in range(size):
            sender = coin.nonzero.choice(self.rng)
            amount = self._amount_of(coin.balances[sender])
            receiver = self.holder()
            self._debit(coin, sender, amount)
            self._credit(coin, receiver, amount)
            from_.append(sender)
            to.append(receiver)
            amounts.append(amount)
        tx = c.coin_admin_transfer_batch_tx(self.admin, coin.ref.token, from_, to, amounts)
        return _Op(Kind.COIN_TRANSFER, tx, size)

    def coin_burn(self, size: int) -> _Op | None:
        coin = self._coin_with_holders()
        if coin is None:
            return None
        from_, amounts = [], []
        for _ in range(size):
            if len(coin.nonzero) == 0:
                break
            holder = coin.nonzero.choice(self.rng)
            amount = self._amount_of(coin.balances[holder])
            self._debit(coin, holder, amount)
            coin.supply -= amount
            from_.append(holder)
            amounts.append(amount)
        tx = c.coin_admin_burn_batch_tx(self.admin, coin.ref.token, from_, amounts)
        return _Op(Kind.COIN_BURN, tx, len(from_))

    def _master_with_tokens(self) -> _MasterState | None:
        candidates = [m for m in self.masters if len(m.live) > 0]
        return candidates[self.rng.randrange(len(candidates))] if candidates else None

    def _coin_with_holders(self) -> _CoinState | None:
        candidates = [coin for coin in self.coins if len(coin.nonzero) > 0]
        return candidates[self.rng.randrange(len(candidates))] if candidates else None

    def _amount_of(self, balance: int) -> int:
        """Sometimes the whole balance (so balances return to 0), else a part of it."""
        return balance if self.rng.randrange(8) == 0 else self.rng.randint(1, balance)

    def _credit(self, coin: _CoinState, holder: bytes, amount: int) -> None:
        coin.balances[holder] = coin.balances.get(holder, 0) + amount
        if coin.balances[holder] > 0:
            coin.nonzero.add(holder)

    def _debit(self, coin: _CoinState, holder: bytes, amount: int) -> None:
        coin.balances[holder] -= amount
        if coin.balances[holder] == 0:
            coin.nonzero.remove(holder)


_PLANNERS: Mapping[Kind, Callable[[_Model, int], _Op | None]] = MappingProxyType(
    {
        Kind.NFT_MINT: _Model.nft_mint,
        Kind.NFT_TRANSFER: _Model.nft_transfer,
        Kind.NFT_BURN: _Model.nft_burn,
        Kind.COIN_MINT: _Model.coin_mint,
        Kind.COIN_TRANSFER: _Model.coin_transfer,
        Kind.COIN_BURN: _Model.coin_burn,
        Kind.DEPOSIT_NATIVE: _Model.deposit_native,
        Kind.DEPOSIT_TOKEN: _Model.deposit_token,
        Kind.CLAIM: _Model.claim,
    }
)


class Workload:
    """Drives one seeded workload on a chain; `setup` once, then `round(k)` as often as wanted.

    The model advances as transactions are planned: after any error the Workload no longer
    matches the chain and must be discarded.
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
        self._model: _Model | None = None
        unknown = set(self.config.mix) - set(_PLANNERS)
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
        model = _Model(
            self._rng,
            admin=admin,
            payers=accounts[1:] or accounts,
            holders=accounts[1:] + _synthetic_holders(self.config),
        )
        receipts = c.transact(
            self.rpc, self._deploy_txs(admin), mine_blocks=self.config.mine_blocks
        )
        model.masters = [_MasterState(m) for m in c.masters_deployed(receipts)]
        model.coins = [_CoinState(coin) for coin in c.artist_coins_deployed(receipts)]
        self._model = model
        counts = {Kind.MASTER_DEPLOYED.value: len(model.masters)}
        counts[Kind.ARTIST_COIN_DEPLOYED.value] = len(model.coins)
        return self._summary(counts, len(receipts), receipts)

    def round(self, events: int) -> Summary:
        """At least `events` more events (fewer txs than blocks x txs_per_block allow)."""
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

    def _require_model(self) -> _Model:
        if self._model is None:
            raise WorkloadError("call setup() or run() first")
        return self._model

    def _deploy_txs(self, admin: bytes) -> list[c.Tx]:
        assert self.factory is not None
        factory, rng, cfg = self.factory.address, self._rng, self.config
        txs = []
        for _ in range(cfg.masters):
            supply = rng.randint(*cfg.master_supply)
            txs.append(c.deploy_master_tx(admin, factory, _uuid_bytes(rng), supply))
        for _ in range(cfg.artists):
            symbol = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
            decimals = rng.choice((18, 18, 18, 6, 8, 0))
            txs.append(c.deploy_artist_coin_tx(admin, factory, _uuid_bytes(rng), symbol, decimals))
        return txs

    def _plan_block(self, budget: int) -> list[_Op]:
        """Up to txs_per_block txs emitting at most `budget` events in total."""
        ops: list[_Op] = []
        while len(ops) < self.config.txs_per_block and budget > 0:
            op = self._plan_tx(budget)
            ops.append(op)
            budget -= op.events
        return ops

    def _plan_tx(self, budget: int) -> _Op:
        model = self._require_model()
        size = self._rng.randint(1, min(self.config.max_events_per_tx, budget))
        for _ in range(100):
            kind = self._rng.choices(self._kinds, self._weights)[0]
            op = model.plan(kind, size)
            if op is not None:
                return op
        raise WorkloadError(f"no valid transaction in the mix {dict(self.config.mix)}")

    def _summary(self, counts: dict[str, int], txs: int, receipts: Sequence[c.Receipt]) -> Summary:
        assert self.factory is not None
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
