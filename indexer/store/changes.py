"""The change log (`indexer_changes`, migration 0016): one row per committed change of a
chain's index, appended in the change's own transaction under the chain's writer lock.

The writer lock is held until commit, so numbering under it (the chain's last seq + 1)
gives seq 1, 2, 3... in commit order with no gaps: the backend's cursor. A batch that added
and removed nothing (most of a follower's blocks) is not a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from indexer.store.revert import Reverted

# The log's counters, by the raw table whose new rows they count.
_COUNTED = {
    "nft_transfers": "nft_transfers",
    "token_transfers": "coin_transfers",
    "dividend_events": "dividend_deposits",
    "dividend_claims": "dividend_claims",
}
_CONTRACT_TABLES = ("master_contracts", "artist_tokens")

_APPEND = """
insert into indexer_changes (chain_id, seq, kind, from_block, to_block, removed_from_block,
    removed_to_block, nft_transfers, coin_transfers, dividend_deposits, dividend_claims,
    contracts, rows_removed, invalidates)
select $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb
from indexer_changes where chain_id = $1
returning seq
"""

# The whole index went: a listener drops everything it holds of the chain.
EVERYTHING = '{"complete": false}'


@dataclass(frozen=True, slots=True)
class Change:
    """What one transaction did to a chain's index."""

    chain_id: int
    kind: str  # batch, reorg, rewind, heal, forget (the log's `kind`)
    from_block: int
    to_block: int
    added: Mapping[str, int] = field(default_factory=dict)  # new rows per raw table
    reverted: Reverted | None = None

    @property
    def changed(self) -> bool:
        """Whether the log records it: a reorg, rewind or forget always; a batch or heal
        when it added or removed rows."""
        if self.kind in ("reorg", "rewind", "forget"):
            return True
        return any(self.added.values()) or bool(self.reverted and self.reverted.raw_rows)

    @property
    def rows_removed(self) -> int:
        return self.reverted.raw_rows if self.reverted else 0

    @property
    def removed_blocks(self) -> tuple[int | None, int | None]:
        """The lowest and highest block that held removed rows (None, None: none)."""
        return (
            (self.reverted.first_block, self.reverted.last_block) if self.reverted else (None, None)
        )

    @property
    def invalidates(self) -> str | None:
        """What the change made stale, as the log's JSON; None when it removed nothing."""
        if self.kind == "forget":
            return EVERYTHING
        return self.reverted.invalidates if self.reverted else None

    def counts(self) -> dict[str, int]:
        counts = {column: self.added.get(table, 0) for table, column in _COUNTED.items()}
        counts["contracts"] = sum(self.added.get(t, 0) for t in _CONTRACT_TABLES)
        return counts

    def summary(self) -> dict[str, Any]:
        """The change's fields as the summary NOTIFY names them (sql/EVENTS.md)."""
        first, last = self.removed_blocks
        out: dict[str, Any] = {
            "fromBlock": self.from_block,
            "toBlock": self.to_block,
            **{_camel(name): n for name, n in self.counts().items()},
            "rowsRemoved": self.rows_removed,
            "removedFromBlock": first,
            "removedToBlock": last,
        }
        if self.kind in ("reorg", "rewind"):
            out["forkBlock"] = self.from_block - 1
            out["cause"] = "operator" if self.kind == "rewind" else "chain"
        return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


async def record_change(conn: asyncpg.Connection, change: Change) -> int:
    """Append `change` to the log and return its seq. The caller holds the writer lock."""
    counts = change.counts()
    seq: int = await conn.fetchval(
        _APPEND,
        change.chain_id,
        change.kind,
        change.from_block,
        change.to_block,
        *change.removed_blocks,
        counts["nft_transfers"],
        counts["coin_transfers"],
        counts["dividend_deposits"],
        counts["dividend_claims"],
        counts["contracts"],
        change.rows_removed,
        change.invalidates,
    )
    return seq
