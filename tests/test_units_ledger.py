"""The coverage ledger's entries and how the audit classifies a difference (pure)."""

from __future__ import annotations

from uuid import UUID

from indexer.audit import _next_covered
from indexer.chain import ContractKind, RawLog, TrackedContract
from indexer.decode import ALL_TOPICS, decode, follows
from indexer.ledger import compare, ledger_of
from indexer.store.coverage import Span


def item(block: int, index: int, tx: int = 1, *, block_hash: bytes | None = None) -> RawLog:
    at = block_hash or bytes([block]) * 32
    return RawLog(block, at, bytes([tx]) * 32, index, b"\x0c" * 20, (b"\x01" * 32,), b"\x02")


def test_one_entry_per_block_with_its_count_and_hash() -> None:
    entries = ledger_of([item(4, 0), item(4, 3), item(6, 1)])
    assert [(e.block_number, e.block_hash, e.log_count) for e in entries] == [
        (4, bytes([4]) * 32, 2),
        (6, bytes([6]) * 32, 1),
    ]
    assert ledger_of([]) == []


def test_the_digest_changes_with_any_log_left_out_added_or_moved() -> None:
    (full,) = ledger_of([item(4, 0), item(4, 1), item(4, 2)])
    (dropped,) = ledger_of([item(4, 0), item(4, 1)])
    (moved,) = ledger_of([item(4, 0), item(4, 1), item(4, 5)])
    (other_tx,) = ledger_of([item(4, 0), item(4, 1), item(4, 2, tx=9)])
    (other_data,) = ledger_of([item(4, 0), item(4, 1), item(4, 2)._replace(data=b"\x03")])
    (other_topic,) = ledger_of([item(4, 0), item(4, 1), item(4, 2)._replace(topics=())])
    digests = {full, dropped, moved, other_tx, other_data, other_topic}
    assert len({entry.digest for entry in digests}) == 6
    assert ledger_of([item(4, 0), item(4, 1), item(4, 2)]) == [full]  # deterministic


def test_equal_entries_are_no_discrepancy() -> None:
    (entry,) = ledger_of([item(4, 0)])
    assert compare(4, entry, entry, entry.block_hash, "receipts") is None
    assert compare(4, None, None, bytes(32), "receipts") is None


def test_a_difference_is_classified_by_what_the_chain_holds() -> None:
    (two,) = ledger_of([item(4, 0), item(4, 1)])
    (one,) = ledger_of([item(4, 0)])
    (other,) = ledger_of([item(4, 0), item(4, 7)])
    h = two.block_hash
    assert (found := compare(4, one, two, h, "receipts")) and found.kind == "missing"
    assert (found := compare(4, None, two, h, "receipts")) and found.kind == "missing"
    assert (found := compare(4, two, one, h, "receipts")) and found.kind == "extra"
    assert (found := compare(4, two, None, h, "receipts")) and found.kind == "extra"
    assert (found := compare(4, two, other, h, "receipts")) and found.kind == "different"
    (elsewhere,) = ledger_of([item(4, 0, block_hash=b"\xee" * 32)])
    assert (found := compare(4, one, elsewhere, b"\xee" * 32, "receipts"))
    assert found.kind == "block_hash"


def test_the_deep_pass_goes_to_the_next_committed_block() -> None:
    spans = [Span(10, 19), Span(40, 49)]
    assert _next_covered(spans, after=-1) == 10
    assert _next_covered(spans, after=12) == 13
    assert _next_covered(spans, after=19) == 40
    assert _next_covered(spans, after=49) is None


def test_follows_is_true_exactly_where_decode_gives_something() -> None:
    """The audit counts logs by `follows` without decoding; the index stores what
    `decode` gives. Both must agree for every kind and signature, well formed or not."""
    other = b"\x42" * 32
    for kind in ContractKind:
        contract = TrackedContract(b"\x0c" * 20, kind, 0, owner_id=UUID(int=1))
        for topic0 in (*ALL_TOPICS, other):
            for topics, data in (((topic0,), b""), ((topic0, *[bytes(32)] * 3), bytes(96))):
                log = RawLog(1, bytes(32), bytes(32), 0, contract.address, topics, data)
                assert follows(log, contract) == (decode(log, contract) is not None), (kind, topic0)
        empty = RawLog(1, bytes(32), bytes(32), 0, contract.address, (), b"")
        assert not follows(empty, contract) and decode(empty, contract) is None
