"""Pure: decoded events and their headers -> the rows one batch stages for COPY.

The derived state itself (owners, balances, totals) is computed set-based in
PostgreSQL from these staged rows, because only the database knows which raw
events are new: deltas must apply exactly once, whatever order ranges arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from indexer.chain import (
    ArtistCoinDeployed,
    BlockRef,
    CoinTransfer,
    DividendClaimed,
    DividendDeposited,
    Event,
    MasterDeployed,
    NftTransfer,
    Quarantined,
    RawLog,
)

Row = tuple[Any, ...]


@dataclass(slots=True)
class StagedRows:
    """Rows per staging table, in the column order of `store.write.STAGES`; uint256
    values as decimal strings, exact (the database turns them into numeric)."""

    master_contracts: list[Row] = field(default_factory=list)
    artist_tokens: list[Row] = field(default_factory=list)
    nft_transfers: list[Row] = field(default_factory=list)
    token_transfers: list[Row] = field(default_factory=list)
    dividend_events: list[Row] = field(default_factory=list)
    dividend_claims: list[Row] = field(default_factory=list)
    quarantine: list[Row] = field(default_factory=list)

    def tables(self) -> dict[str, list[Row]]:
        return {
            "master_contracts": self.master_contracts,
            "artist_tokens": self.artist_tokens,
            "nft_transfers": self.nft_transfers,
            "token_transfers": self.token_transfers,
            "dividend_events": self.dividend_events,
            "dividend_claims": self.dividend_claims,
        }

    def all_rows(self) -> list[list[Row]]:
        """Every table's rows and the quarantined ones (all start with the raw position)."""
        return [*self.tables().values(), self.quarantine]

    def without(self, stored: frozenset[tuple[bytes, int]]) -> StagedRows:
        """A copy without the rows whose (tx_hash, log_index) is in `stored`."""
        if not stored:
            return self
        kept = StagedRows()
        for name, rows in [*self.tables().items(), ("quarantine", self.quarantine)]:
            getattr(kept, name).extend(r for r in rows if (r[4], r[5]) not in stored)
        return kept


def _position(chain_id: int, log: RawLog, when: datetime) -> Row:
    return (chain_id, log.block_number, log.block_hash, when, log.tx_hash, log.log_index)


def _event_row(event: Event) -> tuple[str, Row]:
    match event:
        case MasterDeployed():
            return "master_contracts", (
                event.master_id,
                event.nft,
                event.distributor,
                str(event.total_supply),
            )
        case ArtistCoinDeployed():
            return "artist_tokens", (event.artist_id, event.token, event.symbol, event.decimals)
        case NftTransfer():
            return "nft_transfers", (
                event.log.address,
                str(event.token_id),
                event.sender,
                event.recipient,
                event.master_id,
            )
        case CoinTransfer():
            return "token_transfers", (
                event.log.address,
                event.sender,
                event.recipient,
                str(event.value),
            )
        case DividendDeposited():
            return "dividend_events", (
                event.log.address,
                str(event.dividend_id),
                event.payer,
                event.token,
                str(event.amount),
                str(event.amount_per_share),
            )
        case DividendClaimed():
            return "dividend_claims", (
                event.log.address,
                str(event.dividend_id),
                event.holder,
                str(event.token_id),
                str(event.amount),
            )


def stage_rows(
    chain_id: int,
    decoded: list[Event | Quarantined],
    headers: dict[int, BlockRef],
) -> StagedRows:
    """One row per event, raw position columns first; quarantined logs kept with their reason."""
    staged = StagedRows()
    times: dict[int, datetime] = {
        n: datetime.fromtimestamp(h.timestamp, tz=UTC) for n, h in headers.items()
    }
    tables = staged.tables()
    for item in decoded:
        when = times[item.log.block_number]
        if isinstance(item, Quarantined):
            log = item.log
            staged.quarantine.append(
                (
                    *_position(chain_id, log, when),
                    log.address,
                    list(log.topics),
                    log.data,
                    item.reason,
                )
            )
            continue
        table, columns = _event_row(item)
        tables[table].append((*_position(chain_id, item.log, when), *columns))
    return staged
