"""Plain data shared by every stage: blocks, logs, decoded events. No I/O here.

Logs and events are NamedTuples, not frozen dataclasses: they are made once per log
on the hot path, and a frozen dataclass's __init__ costs several times more.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID

ZERO_ADDRESS = bytes(20)


class ContractKind(StrEnum):
    FACTORY = "factory"
    MASTER_NFT = "master_nft"
    DISTRIBUTOR = "distributor"
    ARTIST_COIN = "artist_coin"


class EventKind(StrEnum):
    MASTER_DEPLOYED = "master_deployed"
    ARTIST_COIN_DEPLOYED = "artist_coin_deployed"
    NFT_TRANSFER = "nft_transfer"
    COIN_TRANSFER = "coin_transfer"
    DIVIDEND_DEPOSITED = "dividend_deposited"
    DIVIDEND_CLAIMED = "dividend_claimed"


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block header as far as the indexer cares: identity, link to its parent, time."""

    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int


class RawLog(NamedTuple):
    """One log as the node returned it, hex already turned into bytes and ints."""

    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything up to and including this block is indexed, and this is its hash."""

    number: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class TrackedContract:
    """A contract whose logs are followed, from the block that created it."""

    address: bytes
    kind: ContractKind
    since_block: int
    owner_id: UUID | None = None  # masterId for NFTs and distributors, artistId for coins


@dataclass(frozen=True, slots=True)
class Position:
    """Where an index stands, read in one transaction: its checkpoint and every child
    contract it has committed. Every child deployed at or below the checkpoint is among
    them, because a batch commits its range's children with the checkpoint it advances."""

    checkpoint: Checkpoint | None
    contracts: tuple[TrackedContract, ...]


class MasterDeployed(NamedTuple):
    log: RawLog
    master_id: UUID
    nft: bytes
    distributor: bytes
    total_supply: int


class ArtistCoinDeployed(NamedTuple):
    log: RawLog
    artist_id: UUID
    token: bytes
    symbol: str
    decimals: int


class NftTransfer(NamedTuple):
    log: RawLog
    master_id: UUID
    sender: bytes
    recipient: bytes
    token_id: int


class CoinTransfer(NamedTuple):
    log: RawLog
    sender: bytes
    recipient: bytes
    value: int


class DividendDeposited(NamedTuple):
    log: RawLog
    dividend_id: int
    payer: bytes
    token: bytes
    amount: int
    amount_per_share: int


class DividendClaimed(NamedTuple):
    log: RawLog
    dividend_id: int
    holder: bytes
    token_id: int
    amount: int


Event = (
    MasterDeployed
    | ArtistCoinDeployed
    | NftTransfer
    | CoinTransfer
    | DividendDeposited
    | DividendClaimed
)


class Quarantined(NamedTuple):
    """A log from a tracked contract that carries a known signature but does not decode."""

    log: RawLog
    reason: str
