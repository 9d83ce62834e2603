"""Pure: decoded events and their headers -> the rows one batch stages for COPY.

The derived state itself (owners, balances, totals) is computed set-based in
PostgreSQL from these staged rows, because only the database knows which raw
events are new: deltas must apply exactly once, whatever order ranges arrive in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from indexer.chain import BlockRef, Event, Quarantined
from indexer.tables import (
    BLOCK_HASH_AT,
    LOG_INDEX_AT,
    QUARANTINE,
    RAW_TABLES,
    TX_HASH_AT,
    RawTable,
    Row,
)


@dataclass(frozen=True, slots=True)
class StagedRows:
    """Rows per raw table, in the declared column order; uint256 values as decimal
    strings, exact (the database turns them into numeric)."""

    by_table: dict[str, list[Row]]

    @classmethod
    def empty(cls) -> StagedRows:
        return cls({t.name: [] for t in RAW_TABLES})

    def __getitem__(self, table: RawTable) -> list[Row]:
        return self.by_table[table.name]

    def __iter__(self) -> Iterator[tuple[RawTable, list[Row]]]:
        return ((t, self.by_table[t.name]) for t in RAW_TABLES)

    def counts(self) -> dict[str, int]:
        """Events per table (quarantined logs are not events)."""
        return {t.name: len(rows) for t, rows in self if t is not QUARANTINE}

    def block_of_tx(self) -> dict[bytes, bytes]:
        """Transaction hash -> the block hash this batch found it in."""
        return {row[TX_HASH_AT]: row[BLOCK_HASH_AT] for _, rows in self for row in rows}

    def without(self, stored: frozenset[tuple[bytes, int]]) -> StagedRows:
        """A copy without the rows whose (tx_hash, log_index) is in `stored`."""
        if not stored:
            return self
        return StagedRows(
            {
                name: [r for r in rows if (r[TX_HASH_AT], r[LOG_INDEX_AT]) not in stored]
                for name, rows in self.by_table.items()
            }
        )


def stage_rows(
    chain_id: int,
    decoded: list[Event | Quarantined],
    headers: dict[int, BlockRef],
) -> StagedRows:
    """One row per event (quarantined logs with their reason), position columns first."""
    staged = StagedRows.empty()
    times: dict[int, datetime] = {
        n: datetime.fromtimestamp(h.timestamp, tz=UTC) for n, h in headers.items()
    }
    # Event class -> (its rows, its values): looked up by the exact class, because
    # this runs once per log and a dict beats a chain of class patterns.
    makers = {t.event: (staged[t], t.values) for t in RAW_TABLES}
    for item in decoded:
        log = item.log
        rows, values = makers[type(item)]
        position = (
            chain_id,
            log.block_number,
            log.block_hash,
            times[log.block_number],
            log.tx_hash,
            log.log_index,
        )
        rows.append(position + values(item))
    return staged
