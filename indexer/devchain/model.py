"""The workload's model of the chain, and the planners that keep every transaction valid.

Planning never reads the chain: each planner draws from the seeded rng, updates the model
as if its transaction had run, and returns that transaction. Only lists and insertion-ordered
dicts are iterated or drawn from (never sets), so a seed always gives the same plan.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from indexer.devchain import contracts as c

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


class Bag(Generic[T]):
    """A list with O(1) add/remove and seeded random choice; iteration order is stable."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._index: dict[T, int] = {}

    def __len__(self) -> int:
        return len(self.items)

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
class MasterState:
    ref: c.Master
    minted: int = 0
    owners: dict[int, bytes] = field(default_factory=dict)
    live: Bag[int] = field(default_factory=Bag)
    claimed: list[set[int]] = field(default_factory=list)  # per dividend id - 1


@dataclass(slots=True)
class CoinState:
    ref: c.ArtistCoinRef
    supply: int = 0
    balances: dict[bytes, int] = field(default_factory=dict)
    nonzero: Bag[bytes] = field(default_factory=Bag)


@dataclass(frozen=True, slots=True)
class Op:
    kind: Kind
    tx: c.Tx
    events: int


class Model:
    """What the chain holds after every planned transaction, and the planners."""

    def __init__(
        self,
        rng: random.Random,
        *,
        admin: bytes,
        payers: list[bytes],
        holders: list[bytes],
        huge_first_mint: bool = True,
    ) -> None:
        self.rng = rng
        self.huge_first_mint = huge_first_mint
        self.admin = admin
        self.payers = payers
        self.holders = holders
        self.masters: list[MasterState] = []
        self.coins: list[CoinState] = []

    def plan(self, kind: Kind, size: int) -> Op | None:
        """One tx of `kind` emitting at most `size` events, or None if none is valid now."""
        return PLANNERS[kind](self, size)

    def holder(self) -> bytes:
        return self.holders[self.rng.randrange(len(self.holders))]

    def nft_mint(self, size: int) -> Op | None:
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
        return Op(Kind.NFT_MINT, c.nft_mint_batch_tx(self.admin, m.ref.nft, to, count), count)

    def nft_transfer(self, size: int) -> Op | None:
        m = self._master_with_tokens()
        if m is None:
            return None
        ids = [m.live.choice(self.rng) for _ in range(size)]
        to = [self.holder() for _ in ids]
        for token_id, owner in zip(ids, to, strict=True):
            m.owners[token_id] = owner
        tx = c.nft_admin_transfer_batch_tx(self.admin, m.ref.nft, ids, to)
        return Op(Kind.NFT_TRANSFER, tx, len(ids))

    def nft_burn(self, size: int) -> Op | None:
        m = self._master_with_tokens()
        if m is None:
            return None
        ids = []
        for _ in range(min(size, len(m.live))):
            token_id = m.live.choice(self.rng)
            m.live.remove(token_id)
            del m.owners[token_id]
            ids.append(token_id)
        return Op(Kind.NFT_BURN, c.nft_admin_burn_batch_tx(self.admin, m.ref.nft, ids), len(ids))

    def claim(self, size: int) -> Op | None:
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
        return Op(Kind.CLAIM, tx, len(ids))

    def deposit_native(self, size: int) -> Op | None:
        m = self.masters[self.rng.randrange(len(self.masters))]
        payer = self.payers[self.rng.randrange(len(self.payers))]
        amount = self.rng.randint(m.ref.total_supply, 10**18)
        m.claimed.append(set())
        tx = c.deposit_native_tx(payer, m.ref.distributor, amount)
        return Op(Kind.DEPOSIT_NATIVE, tx, 1)

    def deposit_token(self, size: int) -> Op | None:
        m = self.masters[self.rng.randrange(len(self.masters))]
        token = self.coins[self.rng.randrange(len(self.coins))].ref.token
        payer = self.payers[self.rng.randrange(len(self.payers))]
        # Huge, but 256 such deposits of one token cannot overflow a holder's credit.
        amount = self.rng.randint(1, 2**248)
        m.claimed.append(set())
        tx = c.deposit_token_tx(payer, m.ref.distributor, token, amount)
        return Op(Kind.DEPOSIT_TOKEN, tx, 1)

    def coin_mint(self, size: int) -> Op | None:
        coin = self.coins[self.rng.randrange(len(self.coins))]
        to = [self.holder() for _ in range(size)]
        amounts = []
        for holder in to:
            # The first mint of a coin is near 2**255: amounts must survive NUMERIC(78,0).
            big = coin.supply == 0 and self.huge_first_mint
            amount = 2**255 - self.rng.randrange(2**64) if big else self.rng.randint(1, 10**24)
            amount = min(amount, MAX_UINT256 - coin.supply)
            coin.supply += amount
            self._credit(coin, holder, amount)
            amounts.append(amount)
        tx = c.coin_mint_batch_tx(self.admin, coin.ref.token, to, amounts)
        return Op(Kind.COIN_MINT, tx, len(to))

    def coin_transfer(self, size: int) -> Op | None:
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
        return Op(Kind.COIN_TRANSFER, tx, size)

    def coin_burn(self, size: int) -> Op | None:
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
        return Op(Kind.COIN_BURN, tx, len(from_))

    def _master_with_tokens(self) -> MasterState | None:
        candidates = [m for m in self.masters if len(m.live) > 0]
        return candidates[self.rng.randrange(len(candidates))] if candidates else None

    def _coin_with_holders(self) -> CoinState | None:
        candidates = [coin for coin in self.coins if len(coin.nonzero) > 0]
        return candidates[self.rng.randrange(len(candidates))] if candidates else None

    def _amount_of(self, balance: int) -> int:
        """Sometimes the whole balance (so balances return to 0), else a part of it."""
        return balance if self.rng.randrange(8) == 0 else self.rng.randint(1, balance)

    def _credit(self, coin: CoinState, holder: bytes, amount: int) -> None:
        coin.balances[holder] = coin.balances.get(holder, 0) + amount
        if coin.balances[holder] > 0:
            coin.nonzero.add(holder)

    def _debit(self, coin: CoinState, holder: bytes, amount: int) -> None:
        coin.balances[holder] -= amount
        if coin.balances[holder] == 0:
            coin.nonzero.remove(holder)


PLANNERS: Mapping[Kind, Callable[[Model, int], Op | None]] = MappingProxyType(
    {
        Kind.NFT_MINT: Model.nft_mint,
        Kind.NFT_TRANSFER: Model.nft_transfer,
        Kind.NFT_BURN: Model.nft_burn,
        Kind.COIN_MINT: Model.coin_mint,
        Kind.COIN_TRANSFER: Model.coin_transfer,
        Kind.COIN_BURN: Model.coin_burn,
        Kind.DEPOSIT_NATIVE: Model.deposit_native,
        Kind.DEPOSIT_TOKEN: Model.deposit_token,
        Kind.CLAIM: Model.claim,
    }
)
