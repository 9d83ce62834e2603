"""The raw-event tables, each declared once: its name, the decoded class it holds, its
typed columns, and how an event becomes a row. Staging DDL, COPY columns, inserts,
reverts, verify and status are all derived from `RAW_TABLES`. Pure: no I/O.

Every raw row starts with the same position columns (`POSITION`): the chain, the block
and the log that produced it. Rows are plain tuples, because asyncpg's COPY encodes an
exact tuple fastest (named tuples cost ~2.5 s of CPU per million rows, in building and
in COPY); what reads a field asks the declaration where it is (`RawTable.field`, or the
`*_AT` indexes of the position), so no module counts columns itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from indexer.chain import (
    ArtistCoinDeployed,
    CoinTransfer,
    DividendClaimed,
    DividendDeposited,
    MasterDeployed,
    NftTransfer,
    Quarantined,
)


class Column(StrEnum):
    """A column's type as staged. UINT256 travels as decimal text (asyncpg's binary numeric
    encoder costs ~9 us per big int, text ~2 us) and PostgreSQL turns it into numeric."""

    BYTEA = "bytea"
    BYTEA_ARRAY = "bytea[]"
    UUID = "uuid"
    TEXT = "text"
    SMALLINT = "smallint"
    UINT256 = "numeric"


POSITION = ("chain_id", "block_number", "block_hash", "block_timestamp", "tx_hash", "log_index")
POSITION_DDL = (
    "chain_id bigint, block_number bigint, block_hash bytea, block_timestamp timestamptz, "
    "tx_hash bytea, log_index integer"
)


Row = tuple[Any, ...]  # one staged row: the position, then the table's columns

BLOCK_HASH_AT = POSITION.index("block_hash")
TX_HASH_AT = POSITION.index("tx_hash")
LOG_INDEX_AT = POSITION.index("log_index")


@dataclass(frozen=True, slots=True)
class RawTable:
    """One raw-event table. `values` turns an event into the columns after the position,
    in declared order; `stage_only` columns feed derived state but are not stored."""

    name: str
    event: type
    columns: tuple[tuple[str, Column], ...]
    values: Callable[[Any], tuple[Any, ...]]
    stage_only: tuple[str, ...] = ()

    def field(self, row: Row, name: str) -> Any:
        """The value of column `name` in one of this table's rows (position included)."""
        return row[(*POSITION, *(n for n, _ in self.columns)).index(name)]

    @property
    def stored_columns(self) -> tuple[str, ...]:
        """Columns of the table itself that are filled from the stage."""
        return (*POSITION, *(n for n, _ in self.columns if n not in self.stage_only))

    @property
    def copy_columns(self) -> tuple[str, ...]:
        """Stage columns in row order, uint256 ones under their text name."""
        return (*POSITION, *(staged_name(n, t) for n, t in self.columns))


def staged_name(name: str, kind: Column) -> str:
    return f"{name}_text" if kind is Column.UINT256 else name


_U = Column.UINT256
_B = Column.BYTEA

MASTER_CONTRACTS = RawTable(
    "master_contracts",
    MasterDeployed,
    (
        ("master_id", Column.UUID),
        ("nft_address", _B),
        ("distributor_address", _B),
        ("total_supply", _U),
    ),
    lambda e: (e.master_id, e.nft, e.distributor, str(e.total_supply)),
)
ARTIST_TOKENS = RawTable(
    "artist_tokens",
    ArtistCoinDeployed,
    (
        ("artist_id", Column.UUID),
        ("token_address", _B),
        ("symbol", Column.TEXT),
        ("decimals", Column.SMALLINT),
    ),
    lambda e: (e.artist_id, e.token, e.symbol, e.decimals),
)
NFT_TRANSFERS = RawTable(
    "nft_transfers",
    NftTransfer,
    (
        ("contract_address", _B),
        ("token_id", _U),
        ("from_address", _B),
        ("to_address", _B),
        ("master_id", Column.UUID),
    ),
    lambda e: (e.log.address, str(e.token_id), e.sender, e.recipient, e.master_id),
    stage_only=("master_id",),
)
TOKEN_TRANSFERS = RawTable(
    "token_transfers",
    CoinTransfer,
    (("token_address", _B), ("from_address", _B), ("to_address", _B), ("value", _U)),
    lambda e: (e.log.address, e.sender, e.recipient, str(e.value)),
)
DIVIDEND_EVENTS = RawTable(
    "dividend_events",
    DividendDeposited,
    (
        ("distributor_address", _B),
        ("dividend_id", _U),
        ("payer_address", _B),
        ("token_address", _B),
        ("amount", _U),
        ("amount_per_share", _U),
    ),
    lambda e: (
        e.log.address,
        str(e.dividend_id),
        e.payer,
        e.token,
        str(e.amount),
        str(e.amount_per_share),
    ),
)
DIVIDEND_CLAIMS = RawTable(
    "dividend_claims",
    DividendClaimed,
    (
        ("distributor_address", _B),
        ("dividend_id", _U),
        ("holder_address", _B),
        ("token_id", _U),
        ("amount", _U),
    ),
    lambda e: (e.log.address, str(e.dividend_id), e.holder, str(e.token_id), str(e.amount)),
)
QUARANTINE = RawTable(
    "indexer_quarantine",
    Quarantined,
    (("address", _B), ("topics", Column.BYTEA_ARRAY), ("data", _B), ("reason", Column.TEXT)),
    lambda q: (q.log.address, list(q.log.topics), q.log.data, q.reason),
)

RAW_TABLES: tuple[RawTable, ...] = (
    MASTER_CONTRACTS,
    ARTIST_TOKENS,
    NFT_TRANSFERS,
    TOKEN_TRANSFERS,
    DIVIDEND_EVENTS,
    DIVIDEND_CLAIMS,
    QUARANTINE,
)
TABLE_NAMES = tuple(t.name for t in RAW_TABLES)
TABLE_OF_EVENT: dict[type, RawTable] = {t.event: t for t in RAW_TABLES}
