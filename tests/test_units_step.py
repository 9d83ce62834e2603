"""Pure pieces of the unit of work: the checkpoint rule, the commit fence, the table
declarations and the staging of rows. No database, no node."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from uuid import UUID

import pytest

from indexer.chain import (
    BlockRef,
    Checkpoint,
    CoinTransfer,
    ContractKind,
    DividendClaimed,
    Event,
    MasterDeployed,
    NftTransfer,
    Position,
    Quarantined,
    RawLog,
    TrackedContract,
)
from indexer.checkpoint import advanced
from indexer.derive import StagedRows, stage_rows
from indexer.errors import IndexMoved
from indexer.store.state import Batch, _check_fence
from indexer.tables import (
    NFT_TRANSFERS,
    POSITION,
    QUARANTINE,
    RAW_TABLES,
    TABLE_OF_EVENT,
    TOKEN_TRANSFERS,
)

MAX = 2**256 - 1


def header(number: int, *, branch: int = 0, parent_branch: int | None = None) -> BlockRef:
    """Block `number` on `branch`; its parent is block number-1 on `parent_branch`."""
    parent = branch if parent_branch is None else parent_branch
    return BlockRef(
        number, _hash(number, branch), _hash(number - 1, parent), 1_700_000_000 + number
    )


def _hash(number: int, branch: int) -> bytes:
    return number.to_bytes(16, "big") + branch.to_bytes(16, "big")


def chain(first: int, last: int, *, branch: int = 0) -> dict[int, BlockRef]:
    return {n: header(n, branch=branch) for n in range(first, last + 1)}


def at(number: int, branch: int = 0) -> Checkpoint:
    return Checkpoint(number, _hash(number, branch))


# --- the checkpoint rule ---------------------------------------------------------------


def test_a_batch_right_after_the_checkpoint_that_links_to_it_moves_it_to_its_end() -> None:
    moved = advanced(at(9), from_block=10, to_block=20, headers=chain(10, 20), window_from=0)
    assert moved == at(20)


def test_a_batch_overlapping_the_checkpoint_moves_it_when_the_block_after_links() -> None:
    moved = advanced(at(14), from_block=10, to_block=20, headers=chain(10, 20), window_from=0)
    assert moved == at(20)


def test_a_batch_whose_first_new_block_is_on_another_branch_leaves_the_checkpoint() -> None:
    forked = chain(10, 20, branch=1)
    assert advanced(at(9), from_block=10, to_block=20, headers=forked, window_from=0) is None


@pytest.mark.parametrize(
    ("stored", "from_block", "to_block"),
    [
        (None, 10, 20),  # a backfill-only index has no checkpoint to extend
        (at(5), 10, 20),  # a gap: blocks 6..9 would be skipped
        (at(20), 10, 20),  # the batch ends at the checkpoint: nothing new
        (at(25), 10, 20),  # already past the batch
    ],
)
def test_a_batch_that_leaves_a_gap_or_adds_nothing_leaves_the_checkpoint(
    stored: Checkpoint | None, from_block: int, to_block: int
) -> None:
    headers = chain(from_block, to_block)
    assert (
        advanced(stored, from_block=from_block, to_block=to_block, headers=headers, window_from=0)
        is None
    )


def test_without_the_next_header_the_link_is_trusted_only_below_the_reorg_window() -> None:
    ends = {10: header(10), 20: header(20)}  # block 15, after the checkpoint, had no logs
    deep = advanced(at(14), from_block=10, to_block=20, headers=ends, window_from=21)
    assert deep == at(20)
    near_tip = advanced(at(14), from_block=10, to_block=20, headers=ends, window_from=18)
    assert near_tip is None


# --- the commit fence ------------------------------------------------------------------


def contract(byte: int, since: int) -> TrackedContract:
    return TrackedContract(bytes([byte]) * 20, ContractKind.MASTER_NFT, since, UUID(int=byte))


def batch(from_block: int, expected: Position | None) -> Batch:
    return Batch(
        from_block=from_block,
        to_block=from_block + 5,
        staged=StagedRows.empty(),
        headers=chain(from_block, from_block + 5),
        window_from=0,
        durable=True,
        expected=expected,
    )


def test_the_fence_passes_a_batch_fetched_on_the_position_that_is_still_committed() -> None:
    now = Position(at(9), (contract(1, 3),))
    _check_fence(now, batch(10, now))
    _check_fence(now, batch(10, None))  # no expectation, no fence


def test_the_fence_refuses_a_batch_when_the_checkpoint_moved() -> None:
    fetched_on = Position(at(9), ())
    with pytest.raises(IndexMoved, match="checkpoint moved"):
        _check_fence(Position(at(12), ()), batch(10, fetched_on))
    with pytest.raises(IndexMoved, match="checkpoint moved"):
        _check_fence(Position(at(9, branch=1), ()), batch(10, fetched_on))


def test_the_fence_refuses_a_batch_fetched_without_a_child_committed_below_it() -> None:
    fetched_on = Position(at(9), (contract(1, 3),))
    now = Position(at(9), (contract(1, 3), contract(2, 7)))
    with pytest.raises(IndexMoved, match="tracked contracts"):
        _check_fence(now, batch(10, fetched_on))


def test_the_fence_ignores_children_committed_inside_or_above_the_batch() -> None:
    fetched_on = Position(at(9), (contract(1, 3),))
    now = Position(at(9), (contract(1, 3), contract(2, 10), contract(3, 99)))
    _check_fence(now, batch(10, fetched_on))


# --- the table declarations ------------------------------------------------------------


def test_every_decoded_class_has_exactly_one_table() -> None:
    decoded = {*typing.get_args(Event), Quarantined}  # everything decode() can return
    assert set(TABLE_OF_EVENT) == decoded
    assert len(RAW_TABLES) == len(decoded) == len({t.name for t in RAW_TABLES})


def test_copy_and_stored_columns_follow_the_declaration() -> None:
    assert NFT_TRANSFERS.copy_columns == (
        *POSITION,
        "contract_address",
        "token_id_text",
        "from_address",
        "to_address",
        "master_id",
    )
    assert "master_id" not in NFT_TRANSFERS.stored_columns  # stage-only
    assert TOKEN_TRANSFERS.stored_columns == (
        *POSITION,
        "token_address",
        "from_address",
        "to_address",
        "value",
    )


# --- staging rows ----------------------------------------------------------------------

TOKEN, ALICE, BOB = b"\x0c" * 20, b"\xaa" * 20, b"\xbb" * 20


def raw(block: int, index: int, tx: int, address: bytes = TOKEN) -> RawLog:
    return RawLog(block, _hash(block, 0), bytes([tx]) * 32, index, address, (b"\x01" * 32,), b"")


def test_each_event_becomes_one_named_row_with_exact_uint256_text() -> None:
    headers = chain(4, 5)
    items: list[Event | Quarantined] = [
        CoinTransfer(raw(4, 0, 1), ALICE, BOB, MAX),
        NftTransfer(raw(5, 1, 2), UUID(int=9), bytes(20), ALICE, 2**200 + 1),
        DividendClaimed(raw(5, 2, 2), 3, ALICE, 7, 10**30),
        Quarantined(raw(5, 3, 3), "data too short"),
        MasterDeployed(raw(5, 4, 3), UUID(int=9), ALICE, BOB, 100),
    ]
    staged = stage_rows(31337, items, headers)
    (transfer,) = staged[TOKEN_TRANSFERS]
    field = TOKEN_TRANSFERS.field
    assert field(transfer, "value") == str(MAX)
    assert field(transfer, "tx_hash") == bytes([1]) * 32 and field(transfer, "log_index") == 0
    assert field(transfer, "block_timestamp") == datetime.fromtimestamp(1_700_000_004, tz=UTC)
    assert type(transfer) is tuple  # what asyncpg's COPY encodes fastest
    (nft,) = staged[NFT_TRANSFERS]
    assert NFT_TRANSFERS.field(nft, "token_id") == str(2**200 + 1)
    assert NFT_TRANSFERS.field(nft, "master_id") == UUID(int=9)
    (quarantined,) = staged[QUARANTINE]
    assert QUARANTINE.field(quarantined, "reason") == "data too short"
    assert QUARANTINE.field(quarantined, "topics") == [b"\x01" * 32]
    assert staged.counts() == {
        "master_contracts": 1,
        "artist_tokens": 0,
        "nft_transfers": 1,
        "token_transfers": 1,
        "dividend_events": 0,
        "dividend_claims": 1,
    }
    for table, rows in staged:
        assert all(len(r) == len(table.copy_columns) for r in rows), table.name


def test_rows_already_stored_are_left_out_by_transaction_and_log_index() -> None:
    items: list[Event | Quarantined] = [
        CoinTransfer(raw(4, i, tx), ALICE, BOB, i) for i, tx in [(0, 1), (1, 1), (2, 2)]
    ]
    staged = stage_rows(1, items, chain(4, 4))
    kept = staged.without(frozenset({(bytes([1]) * 32, 1)}))
    assert [TOKEN_TRANSFERS.field(r, "log_index") for r in kept[TOKEN_TRANSFERS]] == [0, 2]
    assert staged.without(frozenset()) is staged
    assert staged.block_of_tx() == {bytes([1]) * 32: _hash(4, 0), bytes([2]) * 32: _hash(4, 0)}
