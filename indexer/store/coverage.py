"""The coverage ledger in the database: which ranges are committed, and per block what.

Written inside the batch's transaction, under the writer lock (so merging ranges is
race-free); cut back by a rewind. Read by the auditor and `status`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from indexer.errors import IndexMoved
from indexer.ledger import Discrepancy, LedgerEntry

# The union of [from, to] with every range it overlaps or touches, as one row.
_MERGE_COVERAGE = """
with merged as (
    delete from indexer_coverage
    where chain_id = $1 and from_block <= $3 + 1 and to_block >= $2 - 1
    returning from_block, to_block
)
insert into indexer_coverage (chain_id, from_block, to_block)
select $1, least($2, min(from_block)), greatest($3, max(to_block)) from merged
"""

_CUT_ABOVE = """
delete from indexer_coverage where chain_id = $1 and from_block > $2;
update indexer_coverage set to_block = $2 where chain_id = $1 and to_block > $2;
delete from indexer_ledger where chain_id = $1 and block_number > $2;
insert into indexer_audit as a (chain_id, audited_to, cuts) values ($1, -1, 1)
    on conflict (chain_id) do update
    set audited_to = least(a.audited_to, $2), cuts = a.cuts + 1, updated_at = now();
"""

LEDGER_COLUMNS = ("chain_id", "block_number", "block_hash", "log_count", "digest")


async def record(
    conn: asyncpg.Connection,
    chain_id: int,
    from_block: int,
    to_block: int,
    entries: Sequence[LedgerEntry],
) -> None:
    """[from_block, to_block] is committed and holds exactly `entries`."""
    await conn.execute(
        "delete from indexer_ledger where chain_id = $1 and block_number between $2 and $3",
        chain_id,
        from_block,
        to_block,
    )
    if entries:
        await conn.copy_records_to_table(
            "indexer_ledger",
            records=[
                (chain_id, e.block_number, e.block_hash, e.log_count, e.digest) for e in entries
            ],
            columns=LEDGER_COLUMNS,
        )
    await conn.execute(_MERGE_COVERAGE, chain_id, from_block, to_block)


async def holds(conn: asyncpg.Connection, chain_id: int, from_block: int, to_block: int) -> bool:
    """Whether one committed range holds every block of [from_block, to_block]."""
    return bool(
        await conn.fetchval(
            "select exists (select from indexer_coverage where chain_id = $1 "
            "and from_block <= $2 and to_block >= $3)",
            chain_id,
            from_block,
            to_block,
        )
    )


async def cut_above(conn: asyncpg.Connection, chain_id: int, fork_block: int) -> None:
    """Nothing above `fork_block` is committed any more (a reorg or a rewind)."""
    for statement in _CUT_ABOVE.strip().split(";\n"):
        await conn.execute(statement, chain_id, fork_block)


async def ledger(
    conn: asyncpg.Connection, chain_id: int, from_block: int, to_block: int
) -> dict[int, LedgerEntry]:
    rows = await conn.fetch(
        "select block_number, block_hash, log_count, digest from indexer_ledger "
        "where chain_id = $1 and block_number between $2 and $3",
        chain_id,
        from_block,
        to_block,
    )
    return {
        r["block_number"]: LedgerEntry(
            r["block_number"], bytes(r["block_hash"]), r["log_count"], bytes(r["digest"])
        )
        for r in rows
    }


async def check_heal(conn: asyncpg.Connection, chain_id: int, found: Discrepancy) -> None:
    """Under the writer lock: the block is still committed, its ledger entry is the one
    the audit compared, and the index's reorg window (where it holds the block) names the
    hash the audit read. Else another writer moved it meanwhile, or the audit read
    another branch than the index's: IndexMoved, and the block is audited again."""
    number = found.block_number
    now = await ledger(conn, chain_id, number, number)
    if now.get(number) != found.ledger:
        raise IndexMoved(f"block {number} was rewritten while being audited")
    covered = await conn.fetchval(
        "select 1 from indexer_coverage where chain_id = $1 and $2 between from_block and to_block",
        chain_id,
        number,
    )
    if covered is None:
        raise IndexMoved(f"block {number} is no longer committed")
    window = await conn.fetchval(
        "select block_hash from indexer_blocks where chain_id = $1 and block_number = $2",
        chain_id,
        number,
    )
    if window is not None and bytes(window) != found.chain_hash:
        raise IndexMoved(f"block {number} is on another branch than the index's (a reorg)")


async def record_discrepancy(
    conn: asyncpg.Connection, chain_id: int, found: Discrepancy, removed: int, added: int
) -> None:
    await conn.execute(
        "insert into indexer_discrepancies (chain_id, block_number, kind, ledger_count, "
        "chain_count, ledger_hash, chain_hash, source, rows_removed, rows_added) "
        "values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        chain_id,
        found.block_number,
        found.kind,
        found.ledger.log_count if found.ledger else 0,
        found.chain.log_count if found.chain else 0,
        found.ledger.block_hash if found.ledger else None,
        found.chain_hash,
        found.source,
        removed,
        added,
    )


@dataclass(frozen=True, slots=True)
class Span:
    from_block: int
    to_block: int


async def covered(conn: asyncpg.Connection, chain_id: int) -> list[Span]:
    """The committed ranges, in order."""
    rows = await conn.fetch(
        "select from_block, to_block from indexer_coverage where chain_id = $1 order by from_block",
        chain_id,
    )
    return [Span(r["from_block"], r["to_block"]) for r in rows]
