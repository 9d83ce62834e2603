"""The coverage ledger's entries (pure): per block, how many logs of tracked contracts
the indexer follows were committed, and a digest over their identity.

The same function computes an entry from what a batch commits and from what the
auditor reads back by another path, so that equal entries mean equal logs: the
digest covers each log whole (transaction hash, log index, address, topics, data),
in log-index order, under the block hash they were read with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from indexer.chain import RawLog

DIGEST_BYTES = 16


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    block_number: int
    block_hash: bytes
    log_count: int
    digest: bytes


def ledger_of(logs: Iterable[RawLog]) -> list[LedgerEntry]:
    """One entry per block that holds logs; `logs` in chain order."""
    entries: list[LedgerEntry] = []
    number = -1
    block_hash = b""
    count = 0
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for log in logs:
        if log.block_number != number:
            if count:
                entries.append(LedgerEntry(number, block_hash, count, digest.digest()))
            number, block_hash, count = log.block_number, log.block_hash, 0
            digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
        digest.update(log.tx_hash)
        digest.update(log.log_index.to_bytes(4, "big"))
        digest.update(log.address)
        digest.update(len(log.topics).to_bytes(1, "big"))
        for topic in log.topics:
            digest.update(topic)
        digest.update(len(log.data).to_bytes(4, "big"))
        digest.update(log.data)
        count += 1
    if count:
        entries.append(LedgerEntry(number, block_hash, count, digest.digest()))
    return entries


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A committed block that does not hold what the chain holds: what the ledger says
    (None: no logs) against what the audit read."""

    block_number: int
    ledger: LedgerEntry | None
    chain: LedgerEntry | None
    chain_hash: bytes
    source: str  # "receipts" or "audit_endpoint"

    @property
    def kind(self) -> str:
        if self.ledger is not None and self.ledger.block_hash != self.chain_hash:
            return "block_hash"
        ledger_count = self.ledger.log_count if self.ledger else 0
        chain_count = self.chain.log_count if self.chain else 0
        if chain_count > ledger_count:
            return "missing"
        if chain_count < ledger_count:
            return "extra"
        return "different"


def compare(
    number: int,
    ledger: LedgerEntry | None,
    chain: LedgerEntry | None,
    chain_hash: bytes,
    source: str,
) -> Discrepancy | None:
    """None when the block's ledger entry is what the chain holds."""
    if ledger == chain:
        return None
    return Discrepancy(number, ledger, chain, chain_hash, source)
