"""Pure: decoded events and their headers -> the rows one batch stages for COPY.

The derived state itself (owners, balances, totals) is computed set-based in
PostgreSQL from these staged rows, because only the database knows which raw
events are new: deltas must apply exactly once, whatever order ranges arrive in.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _master_contract(e: MasterDeployed) -> Row:
    return (e.master_id, e.nft, e.distributor, str(e.total_supply))


def _artist_token(e: ArtistCoinDeployed) -> Row:
    return (e.artist_id, e.token, e.symbol, e.decimals)


def _nft_transfer(e: NftTransfer) -> Row:
    return (e.log.address, str(e.token_id), e.sender, e.recipient, e.master_id)


def _token_transfer(e: CoinTransfer) -> Row:
    return (e.log.address, e.sender, e.recipient, str(e.value))


def _dividend_event(e: DividendDeposited) -> Row:
    return (
        e.log.address,
        str(e.dividend_id),
        e.payer,
        e.token,
        str(e.amount),
        str(e.amount_per_share),
    )


def _dividend_claim(e: DividendClaimed) -> Row:
    return (e.log.address, str(e.dividend_id), e.holder, str(e.token_id), str(e.amount))


# Event class -> (staging table, its columns after the raw position). Looked up by the
# exact class, because this runs once per log and a dict beats a chain of class patterns.
_ROWS: dict[type, tuple[str, Callable[[Any], Row]]] = {
    MasterDeployed: ("master_contracts", _master_contract),
    ArtistCoinDeployed: ("artist_tokens", _artist_token),
    NftTransfer: ("nft_transfers", _nft_transfer),
    CoinTransfer: ("token_transfers", _token_transfer),
    DividendDeposited: ("dividend_events", _dividend_event),
    DividendClaimed: ("dividend_claims", _dividend_claim),
}


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
        log = item.log
        position = (
            chain_id,
            log.block_number,
            log.block_hash,
            times[log.block_number],
            log.tx_hash,
            log.log_index,
        )
        if isinstance(item, Quarantined):
            staged.quarantine.append(
                (*position, log.address, list(log.topics), log.data, item.reason)
            )
            continue
        table, columns = _ROWS[type(item)]
        tables[table].append(position + columns(item))
    return staged
