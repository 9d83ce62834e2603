"""The pure core: decoding, provider limit messages, range planning, batch splitting."""

from __future__ import annotations

from uuid import UUID

import pytest

from indexer.chain import (
    BlockRef,
    CoinTransfer,
    ContractKind,
    Event,
    NftTransfer,
    Quarantined,
    RawLog,
    TrackedContract,
)
from indexer.decode import DIVIDEND_CLAIMED, TRANSFER, decode
from indexer.errors import RangeTooLarge
from indexer.limits import parse_limit_error
from indexer.ranges import RangePlanner
from indexer.step import Decoded, split

MASTER = UUID(int=7)
NFT = TrackedContract(b"\x01" * 20, ContractKind.MASTER_NFT, 0, MASTER)
COIN = TrackedContract(b"\x02" * 20, ContractKind.ARTIST_COIN, 0, UUID(int=8))
DISTRIBUTOR = TrackedContract(b"\x03" * 20, ContractKind.DISTRIBUTOR, 0, MASTER)
ALICE, BOB = b"\xaa" * 20, b"\xbb" * 20
MAX = 2**256 - 1


def word(value: int | bytes) -> bytes:
    return value.rjust(32, b"\0") if isinstance(value, bytes) else value.to_bytes(32, "big")


def log(
    contract: TrackedContract, topics: list[bytes], data: bytes = b"", block: int = 1
) -> RawLog:
    return RawLog(block, b"\x09" * 32, b"\x08" * 32, 0, contract.address, tuple(topics), data)


def test_erc721_and_erc20_transfers_are_told_apart_and_exact() -> None:
    nft = decode(log(NFT, [TRANSFER, word(ALICE), word(BOB), word(MAX)]), NFT)
    coin = decode(log(COIN, [TRANSFER, word(ALICE), word(BOB)], word(MAX)), COIN)
    assert isinstance(nft, NftTransfer) and nft.token_id == MAX and nft.master_id == MASTER
    assert isinstance(coin, CoinTransfer) and coin.value == MAX and coin.recipient == BOB


@pytest.mark.parametrize(
    ("contract", "topics", "data", "reason"),
    [
        (COIN, [TRANSFER, word(ALICE), word(BOB), word(1)], word(1), "4 topics, expected 3"),
        (NFT, [TRANSFER, word(ALICE), word(BOB)], word(1), "3 topics, expected 4"),
        (COIN, [TRANSFER, word(ALICE), word(BOB)], b"\x01" * 5, "data is 5 bytes"),
        (COIN, [TRANSFER, b"\x01" * 32, word(BOB)], word(1), "left-padded"),
        (DISTRIBUTOR, [DIVIDEND_CLAIMED, word(1), word(ALICE), word(1)], b"", "data is 0"),
    ],
)
def test_malformed_logs_become_quarantine_reasons(
    contract: TrackedContract, topics: list[bytes], data: bytes, reason: str
) -> None:
    result = decode(log(contract, topics, data), contract)
    assert isinstance(result, Quarantined)
    assert reason in result.reason


def test_signatures_we_do_not_follow_are_ignored() -> None:
    approval = bytes(32)
    assert decode(log(COIN, [approval, word(ALICE), word(BOB)], word(1)), COIN) is None
    assert decode(log(COIN, []), COIN) is None


@pytest.mark.parametrize(
    ("code", "message", "data", "suggested_to", "ceiling"),
    [
        (
            -32602,
            "Log response size exceeded. ... up to a 2K block range and no limit on the "
            "response size ... this block range should work: [0x64, 0xc8]",
            None,
            200,
            2000,
        ),
        (
            -32005,
            "query returned more than 10000 results. Try with this block range [0x10, 0x20].",
            {"from": "0x10", "to": "0x1f"},
            31,
            None,
        ),
        (-32614, "eth_getLogs is limited to a 10,000 range", None, None, 10000),
        (-32614, "eth_getLogs is limited to a 10000 range", None, None, 10000),
        (-32000, "maximum block range: 2000", None, None, 2000),
        (-32000, "please limit the query to at most 1000 blocks", None, None, 1000),
        (-32000, "exceed maximum block range: 50000", None, None, 50000),
        (-32005, "query exceeds max results 20000, retry with the range 100-200", None, 200, None),
        (-32000, "block range too large", None, None, None),
        (-32000, "response is too big", None, None, None),
        (-32005, "limit exceeded", None, None, None),
        (-32005, "logs matched by query exceeds limit of 10000", None, None, None),
    ],
)
def test_provider_limit_messages(
    code: int, message: str, data: object, suggested_to: int | None, ceiling: int | None
) -> None:
    hint = parse_limit_error(code, message, data)
    assert hint is not None
    assert (hint.suggested_to, hint.ceiling) == (suggested_to, ceiling)


def test_other_errors_are_not_limits() -> None:
    assert parse_limit_error(-32000, "execution reverted") is None
    assert parse_limit_error(-32601, "method not found") is None


def test_planner_shrinks_to_hints_keeps_ceilings_and_grows_when_sparse() -> None:
    planner = RangePlanner(span=1000, max_span=100_000, target_logs=1000)
    planner.refused(RangeTooLarge("x", suggested_to=149, ceiling=None), start=100, end=1099)
    assert planner.span == 50
    planner.refused(RangeTooLarge("x", suggested_to=None, ceiling=None), start=0, end=49)
    assert planner.span == 25
    planner.refused(RangeTooLarge("x", suggested_to=None, ceiling=20), start=0, end=24)
    assert planner.span == 12
    for _ in range(20):
        planner.succeeded(blocks=planner.span, logs=0)
    assert planner.span == 20  # never past the stated ceiling
    planner.succeeded(blocks=20, logs=4000)
    assert planner.span == 5  # dense: aim at the target


def test_split_cuts_at_block_boundaries_and_keeps_headers_in_range() -> None:
    logs = [
        RawLog(n, bytes([n]) * 32, bytes([i]) * 32, i, NFT.address, (TRANSFER,), b"")
        for i, n in enumerate([10, 10, 10, 11, 12, 12, 15])
    ]
    headers = {n: BlockRef(n, bytes([n]) * 32, b"", 0) for n in (10, 11, 12, 15, 20)}
    items: list[Event | Quarantined] = [
        NftTransfer(g, MASTER, ALICE, BOB, g.log_index) for g in logs
    ]
    found = Decoded(10, 20, headers, items)
    parts = split(found, 2)
    assert [(p.from_block, p.to_block) for p in parts] == [(10, 10), (11, 12), (13, 20)]
    assert [len(p.items) for p in parts] == [3, 3, 1]
    assert all(set(p.headers) <= set(range(p.from_block, p.to_block + 1)) for p in parts)
    assert split(found, 100) == [found]
