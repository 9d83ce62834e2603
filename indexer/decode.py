"""Pure decoding: a raw log from a tracked contract becomes a typed event,
a quarantine reason, or nothing (a signature this indexer does not follow).

Parsing is done by hand on purpose: web3's formatters cost ~60x more per log.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from eth_hash.auto import keccak

from indexer.chain import (
    ArtistCoinDeployed,
    CoinTransfer,
    ContractKind,
    DividendClaimed,
    DividendDeposited,
    Event,
    MasterDeployed,
    NftTransfer,
    Quarantined,
    RawLog,
    TrackedContract,
)


def _topic(signature: str) -> bytes:
    return keccak(signature.encode())


TRANSFER = _topic("Transfer(address,address,uint256)")
MASTER_DEPLOYED = _topic("MasterDeployed(bytes16,address,address,uint256)")
ARTIST_COIN_DEPLOYED = _topic("ArtistCoinDeployed(bytes16,address,string,uint8)")
DIVIDEND_DEPOSITED = _topic("DividendDeposited(uint256,address,address,uint256,uint256)")
DIVIDEND_CLAIMED = _topic("DividendClaimed(uint256,address,uint256,uint256)")

ALL_TOPICS = (TRANSFER, MASTER_DEPLOYED, ARTIST_COIN_DEPLOYED, DIVIDEND_DEPOSITED, DIVIDEND_CLAIMED)


class Malformed(ValueError):
    """Why a log with a followed signature cannot be decoded."""


_PADDING = bytes(12)


def _address(word: bytes) -> bytes:
    if len(word) != 32 or word[:12] != _PADDING:
        raise Malformed("address word is not a left-padded 20-byte value")
    return word[12:]


def _words(data: bytes, count: int) -> list[bytes]:
    if len(data) < 32 * count:
        raise Malformed(f"data is {len(data)} bytes, expected at least {32 * count}")
    if count == 1:
        return [data[:32]]
    return [data[i : i + 32] for i in range(0, 32 * count, 32)]


def _uint(word: bytes) -> int:
    return int.from_bytes(word, "big")


def _bytes16(word: bytes) -> UUID:
    if len(word) != 32 or any(word[16:]):
        raise Malformed("bytes16 topic is not right-padded")
    return UUID(bytes=word[:16])


def _expect_topics(log: RawLog, count: int, what: str) -> None:
    if len(log.topics) != count:
        raise Malformed(f"{what} with {len(log.topics)} topics, expected {count}")


def _abi_string(data: bytes, offset: int) -> str:
    if offset + 32 > len(data):
        raise Malformed("string offset points past the data")
    length = _uint(data[offset : offset + 32])
    end = offset + 32 + length
    if end > len(data):
        raise Malformed("string length runs past the data")
    try:
        return data[offset + 32 : end].decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed("symbol is not valid UTF-8") from e


def _factory(log: RawLog, contract: TrackedContract) -> Event | None:
    topic0 = log.topics[0]
    if topic0 == MASTER_DEPLOYED:
        _expect_topics(log, 4, "MasterDeployed")
        (supply,) = _words(log.data, 1)
        return MasterDeployed(
            log=log,
            master_id=_bytes16(log.topics[1]),
            nft=_address(log.topics[2]),
            distributor=_address(log.topics[3]),
            total_supply=_uint(supply),
        )
    if topic0 == ARTIST_COIN_DEPLOYED:
        _expect_topics(log, 3, "ArtistCoinDeployed")
        offset, decimals = _words(log.data, 2)
        if _uint(decimals) > 255:
            raise Malformed("decimals does not fit uint8")
        return ArtistCoinDeployed(
            log=log,
            artist_id=_bytes16(log.topics[1]),
            token=_address(log.topics[2]),
            symbol=_abi_string(log.data, _uint(offset)),
            decimals=_uint(decimals),
        )
    return None


def _master_nft(log: RawLog, contract: TrackedContract) -> Event | None:
    if log.topics[0] != TRANSFER:
        return None
    _expect_topics(log, 4, "ERC-721 Transfer")
    if contract.owner_id is None:
        raise Malformed("MasterNFT without a masterId")
    return NftTransfer(
        log=log,
        master_id=contract.owner_id,
        sender=_address(log.topics[1]),
        recipient=_address(log.topics[2]),
        token_id=_uint(log.topics[3]),
    )


def _artist_coin(log: RawLog, contract: TrackedContract) -> Event | None:
    if log.topics[0] != TRANSFER:
        return None
    _expect_topics(log, 3, "ERC-20 Transfer")
    (value,) = _words(log.data, 1)
    return CoinTransfer(
        log=log,
        sender=_address(log.topics[1]),
        recipient=_address(log.topics[2]),
        value=_uint(value),
    )


def _distributor(log: RawLog, contract: TrackedContract) -> Event | None:
    topic0 = log.topics[0]
    if topic0 == DIVIDEND_DEPOSITED:
        _expect_topics(log, 3, "DividendDeposited")
        token, amount, per_share = _words(log.data, 3)
        return DividendDeposited(
            log=log,
            dividend_id=_uint(log.topics[1]),
            payer=_address(log.topics[2]),
            token=_address(token),
            amount=_uint(amount),
            amount_per_share=_uint(per_share),
        )
    if topic0 == DIVIDEND_CLAIMED:
        _expect_topics(log, 4, "DividendClaimed")
        (amount,) = _words(log.data, 1)
        return DividendClaimed(
            log=log,
            dividend_id=_uint(log.topics[1]),
            holder=_address(log.topics[2]),
            token_id=_uint(log.topics[3]),
            amount=_uint(amount),
        )
    return None


_DECODERS: dict[ContractKind, Callable[[RawLog, TrackedContract], Event | None]] = {
    ContractKind.FACTORY: _factory,
    ContractKind.MASTER_NFT: _master_nft,
    ContractKind.ARTIST_COIN: _artist_coin,
    ContractKind.DISTRIBUTOR: _distributor,
}


# The signatures each kind of contract is followed for: `decode` gives an event or a
# quarantine reason for exactly these, and None for any other log.
FOLLOWED: dict[ContractKind, frozenset[bytes]] = {
    ContractKind.FACTORY: frozenset({MASTER_DEPLOYED, ARTIST_COIN_DEPLOYED}),
    ContractKind.MASTER_NFT: frozenset({TRANSFER}),
    ContractKind.ARTIST_COIN: frozenset({TRANSFER}),
    ContractKind.DISTRIBUTOR: frozenset({DIVIDEND_DEPOSITED, DIVIDEND_CLAIMED}),
}


def follows(log: RawLog, contract: TrackedContract) -> bool:
    """Whether `decode` gives something for the log (an event or a quarantine reason),
    without decoding it."""
    return bool(log.topics) and log.topics[0] in FOLLOWED[contract.kind]


def decode(log: RawLog, contract: TrackedContract) -> Event | Quarantined | None:
    """Decode one log of `contract`. Never raises: bad input becomes Quarantined."""
    if not log.topics:
        return None
    try:
        return _DECODERS[contract.kind](log, contract)
    except Malformed as e:
        return Quarantined(log=log, reason=str(e))
