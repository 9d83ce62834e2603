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
from indexer.tables import QUARANTINE, RAW_TABLES, RawRow, RawTable


@dataclass(frozen=True, slots=True)
class StagedRows:
    """Rows per raw table (named tuples of `RawTable.row`); uint256 values as decimal
    strings, exact (the database turns them into numeric)."""

    by_table: dict[str, list[RawRow]]

    @classmethod
    def empty(cls) -> StagedRows:
        return cls({t.name: [] for t in RAW_TABLES})

    def __getitem__(self, table: RawTable) -> list[RawRow]:
        return self.by_table[table.name]

    def __iter__(self) -> Iterator[tuple[RawTable, list[RawRow]]]:
        return ((t, self.by_table[t.name]) for t in RAW_TABLES)

    def counts(self) -> dict[str, int]:
        """Events per table (quarantined logs are not events)."""
        return {t.name: len(rows) for t, rows in self if t is not QUARANTINE}

    def block_of_tx(self) -> dict[bytes, bytes]:
        """Transaction hash -> the block hash this batch found it in."""
        return {row.tx_hash: row.block_hash for _, rows in self for row in rows}

    def without(self, stored: frozenset[tuple[bytes, int]]) -> StagedRows:
        """A copy without the rows whose (tx_hash, log_index) is in `stored`."""
        if not stored:
            return self
        return StagedRows(
            {
                name: [r for r in rows if (r.tx_hash, r.log_index) not in stored]
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
    # Event class -> (its rows, row maker, values): looked up by the exact class, because
    # this runs once per log and a dict beats a chain of class patterns.
    makers = {t.event: (staged[t], t.row._make, t.values) for t in RAW_TABLES}
    for item in decoded:
        log = item.log
        rows, make, values = makers[type(item)]
        position = (
            chain_id,
            log.block_number,
            log.block_hash,
            times[log.block_number],
            log.tx_hash,
            log.log_index,
        )
        rows.append(make(position + values(item)))
    return staged
