"""`python -m tests.bench.partitioning`: nft_transfers at 10M rows, plain and partitioned.

What partitioning the raw tables by block range would cost and gain, measured on the
statements that read them (sql/PARTITIONING.md holds the plan and the numbers). In a fresh
database (created here, migrated with the project's runner, dropped at the end):

* `public.nft_transfers` gets `--txs` transactions (default 1,000,000: exactly 10M rows) of
  a production-like shape: one transaction every 3 1/3 blocks (3,000 events per 1,000
  blocks), of 1 to 148 events (10 on average: 74% of the events are batch mints of 148,
  the rest transfers of 1-20 NFTs, 2% of them burns), 2,000 NFT contracts of skewed size,
  300,000 owners of skewed activity, sha256 transaction and block hashes; plus 2,000
  master_contracts and the master_nfts rows of the NFTs moved in the last 1,000 blocks
  (what a rewind recomputes). The other raw tables stay empty: their share of each
  statement is the same in both layouts.
* `part.nft_transfers` holds the same rows, range-partitioned by block_number in
  partitions of `--partition-blocks` blocks, with the same indexes and a primary key that
  has to include the partition key: (chain_id, tx_hash, log_index, block_number).

Each layout is measured on its own connection, its `search_path` choosing the table, so
that every statement is the project's own text (indexer/store/write.py, revert.py, ops.py,
sql/queries), imported, not copied. Every run is one transaction, rolled back; the layouts
take turns: a warm-up run, `--runs` timed runs (the median is reported), then one run under
EXPLAIN (ANALYZE, BUFFERS) for the plan, the planning time and the pages touched. Both
layouts must return the same row counts, or the script fails. Autovacuum is off for the
two tables so that it cannot land in one layout's runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from indexer import logs
from indexer.backend_queries import load_queries
from indexer.store.db import _TUNING
from indexer.store.ops import _ROWS_PER_BLOCK
from indexer.store.revert import _DELETE, _ORPHANS_ABOVE, _TEMP, revert_above
from indexer.store.write import _INSERT_MASTER_CONTRACTS, _STAGE_DDL, _STORED_BY_TX, _ZERO
from indexer.store.write import _insert_raw as insert_raw
from indexer.tables import MASTER_CONTRACTS, NFT_TRANSFERS, POSITION, Column
from tests.bench import queryplans
from tests.helpers import pg

CHAIN_ID = 1
FIRST_BLOCK = 20_000_000
CONTRACTS = 2_000
HOLDERS = 300_000
# Events per transaction, by transaction number modulo 20: 10 on average, one batch mint
# (the largest) per 20 transactions, so 2,000 consecutive transactions are 20,000 events.
TX_SIZES = (1, 1, 3, 1, 1, 8, 1, 1, 1, 20, 1, 1, 2, 1, 1, 148, 1, 5, 1, 1)
MINT_SIZE = max(TX_SIZES)
MINT_SLOT = TX_SIZES.index(MINT_SIZE)
BATCH_TXS = 2_000  # the write path's batch (AUDIFI_BATCH_MAX_LOGS 20,000 rows)
BATCH_BLOCKS = BATCH_TXS * 10 // 3  # the blocks such a batch spans
RECENT_BLOCKS = 1_000  # master_nfts holds the NFTs moved in these last blocks
PLANS = Path(__file__).resolve().parents[2] / ".bench" / "partitioning-plans.md"

_HELPERS = f"""
{dict(queryplans.BUILD)["helpers"]}
create function pg_temp.tx_size(t bigint) returns int language sql immutable as
$$ select (array{list(TX_SIZES)})[1 + t % {len(TX_SIZES)}] $$;
-- The contract of mint number j: skewed towards contract 1 (a Weyl sequence, squared).
create function pg_temp.contract_of(j bigint) returns int language sql immutable as
$$ select 1 + floor({CONTRACTS} * power(j * 0.6180339887498949 % 1, 2))::int $$;
create function pg_temp.holder() returns int language sql volatile as
$$ select 1 + floor({HOLDERS} * power(random(), 3))::int $$;
"""

# One row per event of transactions $1..$2, one transaction a block. Mint number j is
# transaction 20j + MINT_SLOT: token ids 148j + 1..148j + 148 of contract_of(j), to one
# buyer. Any other event moves a token minted earlier (old mints and low token ids more
# often) between two skewed owners, or burns it.
_EVENTS = f"""
select
    x.t as tx,
    {CHAIN_ID}::bigint as chain_id,
    x.block as block_number,
    pg_temp.hash32('block', x.block) as block_hash,
    pg_temp.ts(x.block) as block_timestamp,
    pg_temp.hash32('tx', x.t) as tx_hash,
    (x.t % 7) * 3 + e.e - 1 as log_index,
    pg_temp.addr('nft', pg_temp.contract_of(case when x.mint then x.j else p.j end))
        as contract_address,
    case when x.mint then x.j * {MINT_SIZE} + e.e else p.j * {MINT_SIZE} + p.e end as token_id,
    case when x.mint then {_ZERO} else pg_temp.addr('holder', p.sender) end as from_address,
    case when x.mint then pg_temp.addr('holder', x.buyer)
         when p.burn then {_ZERO}
         else pg_temp.addr('holder', p.recipient) end as to_address
from (
    select t, {FIRST_BLOCK} + t * 10 / 3 as block, t % {len(TX_SIZES)} = {MINT_SLOT} as mint,
           t / {len(TX_SIZES)} as j, pg_temp.tx_size(t) as size, pg_temp.holder() as buyer
    from generate_series($1::bigint, $2::bigint) as t
    offset 0
) as x
cross join lateral generate_series(1, x.size) as e(e)
cross join lateral (
    select floor(greatest(x.j - 1, 0) * power(random() + 0 * e.e, 1.5))::bigint as j,
           1 + floor({MINT_SIZE} * power(random(), 3))::int as e,
           pg_temp.holder() as sender, pg_temp.holder() as recipient,
           random() < 0.02 as burn
    offset 0
) as p
"""
_COLUMNS = (
    "chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index, "
    "contract_address, token_id, from_address, to_address"
)

# One deployment per contract, before the first transfer; minted_supply from the mints.
_MASTER_CONTRACTS = f"""
insert into master_contracts (chain_id, block_number, block_hash, block_timestamp, tx_hash,
    log_index, master_id, nft_address, distributor_address, total_supply, minted_supply,
    burned_supply)
select {CHAIN_ID}, {FIRST_BLOCK} - c, pg_temp.hash32('block', {FIRST_BLOCK} - c),
       pg_temp.ts({FIRST_BLOCK} - c), pg_temp.hash32('deploy', c), 0, md5('master' || c)::uuid,
       pg_temp.addr('nft', c), pg_temp.addr('distributor', c), 10000000,
       coalesce(m.minted, 0), 0
from generate_series(1, {CONTRACTS}) as c
left join (select pg_temp.contract_of(j) as c, count(*) * {MINT_SIZE} as minted
           from generate_series(0, ($1::bigint - {MINT_SLOT}) / {len(TX_SIZES)}) as j
           group by 1) as m using (c)
"""

_RECENT_NFTS = f"""
insert into master_nfts (chain_id, contract_address, token_id, master_id, owner_address,
    is_burned, last_transfer_block, last_transfer_log_index, last_transfer_at,
    last_transfer_tx_hash)
select distinct on (t.contract_address, t.token_id)
       t.chain_id, t.contract_address, t.token_id, c.master_id, t.to_address,
       t.to_address = {_ZERO}, t.block_number, t.log_index, t.block_timestamp, t.tx_hash
from nft_transfers as t
join master_contracts as c on c.chain_id = t.chain_id and c.nft_address = t.contract_address
where t.chain_id = {CHAIN_ID}
  and t.block_number > (select max(block_number) from nft_transfers) - {RECENT_BLOCKS}
order by t.contract_address, t.token_id, t.block_number desc, t.log_index desc
"""

_INDEXES = """
select indexname, indexdef from pg_indexes
where schemaname = 'public' and tablename = 'nft_transfers' and indexname <> 'nft_transfers_pkey'
"""
_PRIMARY_KEY = """
select array_agg(a.attname order by k.n) from pg_constraint as c
cross join unnest(c.conkey) with ordinality as k(attnum, n)
join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = k.attnum
where c.conrelid = 'public.nft_transfers'::regclass and c.contype = 'p'
"""
# Bytes of a table's heap and of each of its indexes, partitions summed.
_SIZES = """
select 'heap' as part, (
    select sum(pg_relation_size(r)) from (
        select relid from pg_partition_tree($1::regclass) union select $1::regclass) as t(r)
)::bigint as bytes
union all
select c.relname, (
    select sum(pg_relation_size(r)) from (
        select relid from pg_partition_tree(i.indexrelid) union select i.indexrelid) as t(r)
)::bigint
from pg_index as i join pg_class as c on c.oid = i.indexrelid
where i.indrelid = $1::regclass
"""
# Rows of every partition, the empty ones (ahead of the tip) included.
_ROWS_PER_PARTITION = """
select (select count(*) from part.nft_transfers as t where t.tableoid = i.inhrelid) as n
from pg_inherits as i where i.inhparent = 'part.nft_transfers'::regclass
"""

# The stage's columns from the tip rows: uint256 as text, stage-only columns null.
_STAGED = ", ".join(
    (
        *POSITION,
        *(
            f"null::{kind.value}"
            if name in NFT_TRANSFERS.stage_only
            else (f"{name}::text" if kind is Column.UINT256 else name)
            for name, kind in NFT_TRANSFERS.columns
        ),
    )
)
_STAGE_TIP = (
    f"insert into stage_nft_transfers ({', '.join(NFT_TRANSFERS.copy_columns)}) "
    f"select {_STAGED} from tip_batch where tx between $1 and $2"
)
# A deployment of contract $2 at block $1, as if its transfers had been indexed first.
_STAGE_DEPLOYMENT = (
    f"insert into stage_master_contracts ({', '.join(MASTER_CONTRACTS.copy_columns)}) "
    f"values ({CHAIN_ID}, $1, sha256('block'), now(), sha256('deploy'), 0, gen_random_uuid(), "
    "$2, substring(sha256($2) from 1 for 20), '10000000')"
)
_UNDEPLOY = f"delete from master_contracts where chain_id = {CHAIN_ID} and nft_address = $1"


@dataclass(frozen=True, slots=True)
class Settings:
    txs: int
    partition_blocks: int
    runs: int
    plans: Path | None
    keep: bool


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    args: tuple[Any, ...] = ()


Procedure = Callable[[asyncpg.Connection], Awaitable[int | None]]
Action = Statement | Procedure
Setup = Callable[[int], Sequence[Statement]]


def no_setup(run: int) -> Sequence[Statement]:
    return ()


@dataclass(frozen=True, slots=True)
class Case:
    """One measured action: the same in both layouts unless `partitioned` differs (None:
    not applicable). `setup(run)` runs first, in the run's transaction, untimed."""

    section: str
    what: str
    case: str
    plain: Action | None
    partitioned: Action | None
    setup: Setup = no_setup
    slow: bool = False  # seconds a run: 3 timed runs instead of --runs

    @property
    def key(self) -> str:
        return f"{self.what} / {self.case}"


@dataclass(frozen=True, slots=True)
class Timing:
    runs_ms: tuple[float, ...]
    rows: int | None
    plan: str | None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def planning(self) -> str:
        match = re.search(r"Planning Time: ([\d.]+) ms", self.plan or "")
        return f"{float(match[1]):.2f}" if match else "—"

    @property
    def pages(self) -> str:
        """Shared buffers the top plan node hit or read, and of them read (not cached)."""
        top = (self.plan or "").split("Planning")[0]
        match = re.search(r"Buffers: shared((?: \w+=\d+)+)", top)
        if match is None:
            return "—"
        counts = {k: int(v) for k, v in (kv.split("=") for kv in match[1].split())}
        hit, read = counts.get("hit", 0), counts.get("read", 0)
        return f"{hit + read:,} ({read:,})"

    @property
    def wal(self) -> str:
        """WAL the statement wrote: MB, and of it full-page images (first changes of a page
        since the last checkpoint)."""
        top = (self.plan or "").split("Planning")[0]
        match = re.search(r"WAL: records=\d+(?: fpi=(\d+))? bytes=(\d+)", top)
        if match is None:
            return "—"
        return f"{int(match[2]) / 2**20:.1f} ({int(match[1] or 0):,} fpi)"

    @property
    def scans(self) -> str:
        """How many partitions (or tables) of nft_transfers the executed plan nodes read."""
        found = {
            name
            for line in (self.plan or "").splitlines()
            if "never executed" not in line
            for name in re.findall(
                r"Scan(?: Backward)?(?: using \S+)? on (nft_transfers(?:_p\d+)?)\b", line
            )
        }
        partitions = {name for name in found if name != "nft_transfers"}
        return str(len(partitions or found)) if found else "—"


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    conn: asyncpg.Connection
    results: dict[str, Timing] = field(default_factory=dict)


async def perform(conn: asyncpg.Connection, action: Action) -> int | None:
    """Runs the action; the rows it returned or changed, when the server says."""
    if isinstance(action, Statement):
        last = (await conn.execute(action.sql, *action.args)).split()[-1]
        return int(last) if last.isdigit() else None
    return await action(conn)


async def once(layout: Layout, case: Case, action: Action, run: int, *, explain: bool) -> Any:
    """One run in a transaction that is rolled back: (ms, rows), or the plan."""
    transaction = layout.conn.transaction()
    await transaction.start()
    try:
        for statement in case.setup(run):
            await layout.conn.execute(statement.sql, *statement.args)
        if explain:
            assert isinstance(action, Statement)
            sql = f"explain (analyze, buffers, wal) {action.sql}"
            return "\n".join(r[0] for r in await layout.conn.fetch(sql, *action.args))
        started = time.perf_counter()
        rows = await perform(layout.conn, action)
        return (time.perf_counter() - started) * 1000, rows
    finally:
        await transaction.rollback()


def explainable(action: Action) -> bool:
    if not isinstance(action, Statement):
        return False
    return action.sql.split()[0].lower() in {"select", "insert", "update", "delete", "with"}


async def measure(case: Case, layouts: Sequence[Layout], runs: int) -> None:
    """A warm-up, `runs` timed runs with the layouts taking turns, one explained run."""
    actions = (case.plain, case.partitioned)
    active = [(layout, a) for layout, a in zip(layouts, actions, strict=True) if a is not None]
    times: dict[str, list[float]] = {layout.name: [] for layout, _ in active}
    rows: dict[str, int | None] = {}
    for run in range(runs + 1):
        for layout, action in active:
            ms, rows[layout.name] = await once(layout, case, action, run, explain=False)
            if run:
                times[layout.name].append(ms)
    if len({n for n in rows.values() if n is not None}) > 1:
        raise SystemExit(f"{case.key}: the layouts disagree on rows: {rows}")
    for layout, action in active:
        plan = (
            await once(layout, case, action, runs + 1, explain=True)
            if explainable(action)
            else None
        )
        layout.results[case.key] = Timing(tuple(times[layout.name]), rows[layout.name], plan)
    medians = (
        f"{layout.name} {statistics.median(times[layout.name]):.1f} ms" for layout, _ in active
    )
    print(f"  {case.key}: {', '.join(medians)}", flush=True)


async def timed(conn: asyncpg.Connection, label: str, sql: str, *args: Any) -> float:
    """Runs one build step; its seconds, also printed."""
    started = time.perf_counter()
    await conn.execute(sql, *args)
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds


async def build_plain(conn: asyncpg.Connection, settings: Settings) -> dict[str, float]:
    """public.nft_transfers and its neighbours; seconds per step. The indexes are dropped
    for the load and built again from the migration's own definitions."""
    await conn.execute(f"{_HELPERS}; select setseed(0.42)")
    indexes = [r["indexdef"] for r in await conn.fetch(_INDEXES)]
    key = ", ".join(await conn.fetchval(_PRIMARY_KEY))
    await conn.execute(
        "alter table nft_transfers drop constraint nft_transfers_pkey; "
        + "".join(f"drop index {r['indexname']};" for r in await conn.fetch(_INDEXES))
    )
    load = f"insert into nft_transfers ({_COLUMNS}) select {_COLUMNS} from ({_EVENTS}) as g"
    steps = {
        "load": await timed(conn, f"{settings.txs:,} transactions", load, 1, settings.txs),
        "indexes": await timed(
            conn,
            f"primary key ({key}) and indexes",
            f"alter table nft_transfers add primary key ({key}); " + "; ".join(indexes),
        ),
    }
    tip = settings.txs + BATCH_TXS * (settings.runs + 2)
    await conn.execute(
        "create table tip_batch (tx bigint not null, like nft_transfers including defaults)"
    )
    await conn.execute(
        f"insert into tip_batch (tx, {_COLUMNS}) select tx, {_COLUMNS} from ({_EVENTS}) as g",
        settings.txs + 1,
        tip,
    )
    await conn.execute(_MASTER_CONTRACTS, settings.txs)
    await conn.execute(_RECENT_NFTS)
    await conn.execute("vacuum analyze master_contracts, master_nfts, tip_batch")
    steps["vacuum analyze"] = await timed(conn, "vacuum analyze", "vacuum analyze nft_transfers")
    return steps


async def build_partitioned(conn: asyncpg.Connection, settings: Settings) -> dict[str, float]:
    """part.nft_transfers: the same rows in block ranges, up to and past the tip batches."""
    width = settings.partition_blocks
    top = int(await conn.fetchval("select max(block_number) from tip_batch"))
    starts = range(FIRST_BLOCK // width * width, top + width, width)
    key = [*await conn.fetchval(_PRIMARY_KEY)]
    key += [] if "block_number" in key else ["block_number"]
    indexes = [
        r["indexdef"].replace(" ON public.nft_transfers ", " ON part.nft_transfers ")
        for r in await conn.fetch(_INDEXES)
    ]
    await conn.execute(
        "create schema part; create table part.nft_transfers (like public.nft_transfers "
        "including defaults including constraints) partition by range (block_number);"
        + "".join(
            f"create table part.nft_transfers_p{s} partition of part.nft_transfers "
            f"for values from ({s}) to ({s + width});"
            for s in starts
        )
    )
    copy = "insert into part.nft_transfers select * from public.nft_transfers"
    steps = {
        "load": await timed(conn, f"copy into {len(starts)} partitions", copy),
        "indexes": await timed(
            conn,
            f"primary key ({', '.join(key)}) and indexes",
            f"alter table part.nft_transfers add primary key ({', '.join(key)}); "
            + "; ".join(indexes),
        ),
        "vacuum analyze": await timed(conn, "vacuum analyze", "vacuum analyze part.nft_transfers"),
    }
    await conn.execute(
        "alter table public.nft_transfers set (autovacuum_enabled = off);"
        + "".join(
            f"alter table part.nft_transfers_p{s} set (autovacuum_enabled = off);" for s in starts
        )
    )
    return steps


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Parameters taken from the data: where the tip is, which contracts and NFTs."""

    tip: int
    partitions: tuple[int, ...]  # the starts of the partitions that hold rows
    new_hashes: list[bytes]  # the first tip batch's transactions: none stored
    stored_hashes: list[bytes]  # 2,000 stored transactions from the middle of the history
    contracts: dict[str, bytes]  # "new", "median", "biggest"
    mints: dict[str, int]
    nfts: dict[str, tuple[str, str, int]]  # label -> (contract 0x, token id, transfers)
    page_after: tuple[int, int]  # the busiest NFT's 50th transfer


_BUSIEST_NFT = f"""
select '0x' || encode(contract_address, 'hex'), token_id::text, count(*)::int
from nft_transfers
where chain_id = {CHAIN_ID} and contract_address = pg_temp.addr('nft', pg_temp.contract_of(0))
  and token_id between 1 and {MINT_SIZE}
group by contract_address, token_id order by 3 desc limit 1
"""
# The last token of the middle mint: low token ids are the ones that move.
_QUIET_NFT = f"""
select '0x' || encode(t.contract_address, 'hex'), t.token_id::text, count(*)::int
from nft_transfers as t
where t.chain_id = {CHAIN_ID}
  and t.contract_address = pg_temp.addr('nft', pg_temp.contract_of($1))
  and t.token_id = $1 * {MINT_SIZE} + {MINT_SIZE}
group by t.contract_address, t.token_id
"""
_CONTRACT_AT_RANK = (
    "select nft_address, minted_supply::bigint from master_contracts "
    "order by minted_supply desc, nft_address offset $1 limit 1"
)


async def one_row(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise SystemExit(f"the synthetic data has nothing for: {sql.split()[:12]}")
    return row


async def landmarks(conn: asyncpg.Connection, settings: Settings) -> Landmarks:
    tip = int(await conn.fetchval("select max(block_number) from nft_transfers"))
    width = settings.partition_blocks
    new = await conn.fetchval(
        "select array_agg(distinct tx_hash) from tip_batch where tx between $1 and $2",
        settings.txs + 1,
        settings.txs + BATCH_TXS,
    )
    stored = await conn.fetchval(
        "select array(select distinct on (block_number) tx_hash from nft_transfers "
        f"where chain_id = {CHAIN_ID} and block_number >= $1 order by block_number limit $2)",
        FIRST_BLOCK + (tip - FIRST_BLOCK) // 2,
        BATCH_TXS,
    )
    ranked = {
        label: await one_row(conn, _CONTRACT_AT_RANK, rank)
        for label, rank in (("biggest", 0), ("median", CONTRACTS // 2))
    }
    busiest = await one_row(conn, _BUSIEST_NFT)
    quiet = await one_row(conn, _QUIET_NFT, settings.txs // len(TX_SIZES) // 2)
    fiftieth = await one_row(
        conn,
        "select block_number, log_index from nft_transfers where chain_id = $1 "
        "and contract_address = decode(substr($2, 3), 'hex') and token_id = $3::numeric "
        "order by block_number, log_index offset 49 limit 1",
        CHAIN_ID,
        busiest[0],
        busiest[1],
    )
    never_deployed = hashlib.sha256(b"never deployed").digest()[:20]
    return Landmarks(
        tip=tip,
        partitions=tuple(range(FIRST_BLOCK // width * width, tip + 1, width)),
        new_hashes=list(new),
        stored_hashes=list(stored),
        contracts={"new": never_deployed} | {k: r[0] for k, r in ranked.items()},
        mints={"new": 0} | {k: r[1] for k, r in ranked.items()},
        nfts={"busiest": tuple(busiest), "quiet": tuple(quiet)},
        page_after=(fiftieth[0], fiftieth[1]),
    )


def tip_batch(settings: Settings) -> Setup:
    """Run n stages the n-th batch of 2,000 transactions above the tip."""

    def setup(run: int) -> Sequence[Statement]:
        first = settings.txs + 1 + run * BATCH_TXS
        return (Statement(_STAGE_DDL), Statement(_STAGE_TIP, (first, first + BATCH_TXS - 1)))

    return setup


def deployment(address: bytes, tip: int) -> Setup:
    def setup(run: int) -> Sequence[Statement]:
        return (
            Statement(_STAGE_DDL),
            Statement(_UNDEPLOY, (address,)),
            Statement(_STAGE_DEPLOYMENT, (tip, address)),
        )

    return setup


def orphans_above(fork: int) -> Setup:
    """revert.py's first step: the (block, hash) pairs above the fork, into `orphaned`."""

    def setup(run: int) -> Sequence[Statement]:
        return (
            Statement(_TEMP),
            Statement(f"insert into orphaned {_ORPHANS_ABOVE}", (CHAIN_ID, fork)),
        )

    return setup


def rewinder(fork: int) -> Procedure:
    async def rewind(conn: asyncpg.Connection) -> int:
        return (await revert_above(conn, CHAIN_ID, fork)).raw_rows

    return rewind


def both(
    section: str,
    what: str,
    case: str,
    action: Action,
    setup: Setup = no_setup,
    *,
    slow: bool = False,
) -> Case:
    """A case whose action is the same text in both layouts."""
    return Case(section, what, case, action, action, setup, slow)


def write_path(marks: Landmarks, settings: Settings) -> list[Case]:
    """(a) The write path's statements that read nft_transfers, at their batch sizes."""
    lookup = "write.py _STORED_BY_TX"
    counts = "write.py _INSERT_MASTER_CONTRACTS"
    return [
        both(
            "a",
            lookup,
            f"{len(marks.new_hashes):,} new transactions (the tip)",
            Statement(_STORED_BY_TX, (CHAIN_ID, marks.new_hashes)),
        ),
        both(
            "a",
            lookup,
            f"{len(marks.stored_hashes):,} stored transactions (a range indexed again)",
            Statement(_STORED_BY_TX, (CHAIN_ID, marks.stored_hashes)),
        ),
        *(
            both(
                "a",
                counts,
                f"{label} contract ({marks.mints[label]:,} mints stored)",
                Statement(_INSERT_MASTER_CONTRACTS),
                deployment(address, marks.tip),
            )
            for label, address in marks.contracts.items()
        ),
        both(
            "a",
            "write.py _insert_raw(nft_transfers)",
            f"{BATCH_TXS * 10:,} staged rows at the tip",
            Statement(insert_raw(NFT_TRANSFERS)),
            tip_batch(settings),
        ),
    ]


def rewinds(marks: Landmarks, settings: Settings) -> list[Case]:
    """(b) Reorg rewinds of the last blocks, and what a deep rewind or retention costs."""
    delete = Statement(_DELETE.format(table="nft_transfers"), (CHAIN_ID,))
    last, oldest = marks.partitions[-1], marks.partitions[0]
    deep = f"above block {last - 1:,} (the last partition's rows)"
    old = f"below block {oldest + settings.partition_blocks:,} (the first partition)"
    retention = Statement(
        "delete from nft_transfers where chain_id = $1 and block_number < $2",
        (CHAIN_ID, oldest + settings.partition_blocks),
    )
    detach = Statement(
        f"alter table nft_transfers detach partition nft_transfers_p{oldest}; "
        f"drop table nft_transfers_p{oldest}"
    )
    return [
        *(
            case
            for n in (1, 64, 128)
            for case in (
                both(
                    "b",
                    "revert.py _DELETE",
                    f"last {n} block{'s' * (n > 1)}",
                    delete,
                    orphans_above(marks.tip - n),
                ),
                both(
                    "b",
                    "revert.py revert_above (all of it)",
                    f"last {n} block{'s' * (n > 1)}",
                    rewinder(marks.tip - n),
                ),
            )
        ),
        both("b", "revert.py _DELETE", deep, delete, orphans_above(last - 1), slow=True),
        Case("b", "truncate", deep, None, Statement(f"truncate nft_transfers_p{last}"), slow=True),
        Case("b", "delete / detach + drop", old, retention, detach, slow=True),
    ]


def reads(marks: Landmarks) -> list[Case]:
    """(c) The backend's query on nft_transfers and verify's per-block counts; (d) analyze."""
    history = load_queries()["nft_history"].sql
    busiest, quiet = marks.nfts["busiest"], marks.nfts["quiet"]
    pages = {
        f"busiest NFT ({busiest[2]:,} transfers), first page of 50": (*busiest[:2], -1, -1),
        "busiest NFT, second page of 50": (*busiest[:2], *marks.page_after),
        f"quiet NFT ({quiet[2]} transfer)": (*quiet[:2], -1, -1),
    }
    first = FIRST_BLOCK + (marks.tip - FIRST_BLOCK) // 3
    per_block = Statement(_ROWS_PER_BLOCK["nft_transfers"], (CHAIN_ID, first, first + BATCH_BLOCKS))
    return [
        *(
            both("c", "queries/nft_history.sql", label, Statement(history, (CHAIN_ID, *args, 50)))
            for label, args in pages.items()
        ),
        both("c", "ops.py _ROWS_PER_BLOCK (verify)", f"{BATCH_BLOCKS:,} blocks", per_block),
        both("d", "analyze", "after the load", Statement("analyze nft_transfers"), slow=True),
    ]


async def vacuum_after_rewind(layout: Layout, fork: int) -> tuple[int, float]:
    """Commits revert.py's delete of the rows above `fork`, then times a plain VACUUM of the
    table: (rows deleted, seconds). Destructive: the last measurement."""
    async with layout.conn.transaction():
        for statement in orphans_above(fork)(0):
            await layout.conn.execute(statement.sql, *statement.args)
        status = await layout.conn.execute(_DELETE.format(table="nft_transfers"), CHAIN_ID)
    started = time.perf_counter()
    await layout.conn.execute("vacuum nft_transfers")
    return int(status.split()[-1]), time.perf_counter() - started


async def sizes(conn: asyncpg.Connection, table: str) -> dict[str, int]:
    return {r["part"]: r["bytes"] for r in await conn.fetch(_SIZES, table)}


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def results_table(cases: Sequence[Case], layouts: Sequence[Layout]) -> str:
    plain, part = layouts
    lines = [
        "| | statement | case | rows | plain ms | partitioned ms | pages plain / part "
        "| WAL MB plain / part | planning ms plain / part | partitions read |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        a, b = plain.results.get(case.key), part.results.get(case.key)
        rows = next((t.rows for t in (a, b) if t is not None and t.rows is not None), None)
        lines.append(
            f"| {case.section} | `{case.what}` | {case.case} | "
            f"{'—' if rows is None else f'{rows:,}'} | "
            f"{f'{a.median_ms:,.1f}' if a else '—'} | {f'{b.median_ms:,.1f}' if b else '—'} | "
            f"{a.pages if a else '—'} / {b.pages if b else '—'} | "
            f"{a.wal if a else '—'} / {b.wal if b else '—'} | "
            f"{a.planning if a else '—'} / {b.planning if b else '—'} | "
            f"{b.scans if b else '—'} |"
        )
    return "\n".join(lines)


def plans_markdown(cases: Sequence[Case], layouts: Sequence[Layout]) -> str:
    out = ["# nft_transfers plain and partitioned: the plans", ""]
    for case in cases:
        for layout in layouts:
            timing = layout.results.get(case.key)
            if timing is not None and timing.plan is not None:
                runs = ", ".join(f"{ms:.1f}" for ms in timing.runs_ms)
                out += [
                    f"## {case.key}: {layout.name} (runs {runs} ms)",
                    "",
                    "```",
                    timing.plan,
                    "```",
                    "",
                ]
    return "\n".join(out)


async def report_data(conn: asyncpg.Connection, marks: Landmarks) -> None:
    """What was built: rows, sizes, rows per partition."""
    rows = await conn.fetchval("select count(*) from nft_transfers")
    print(
        f"\nnft_transfers: {rows:,} rows, tip block {marks.tip:,}; busiest NFT "
        f"{marks.nfts['busiest'][2]:,} transfers; contracts by mints: "
        + ", ".join(f"{k} {v:,}" for k, v in marks.mints.items())
    )
    plain, part = await sizes(conn, "public.nft_transfers"), await sizes(conn, "part.nft_transfers")
    print("\n| relation | plain | partitioned |\n|---|---:|---:|")
    for name in plain:
        print(f"| {name} | {_mb(plain[name])} | {_mb(part.get(name, 0))} |")
    print(f"| total | {_mb(sum(plain.values()))} | {_mb(sum(part.values()))} |")
    counts = [r["n"] for r in await conn.fetch(_ROWS_PER_PARTITION)]
    held = [n for n in counts if n]
    print(
        f"\npartitions: {len(counts)}, {len(held)} holding rows: "
        f"min {min(held):,} / median {statistics.median(held):,.0f} / max {max(held):,}"
    )


async def prepare(url: str, settings: Settings) -> Landmarks:
    """Builds both layouts over one connection (the generator's helpers are its temp
    functions) and prints what was built."""
    conn = await pg.connect(url)
    try:
        await conn.execute("set synchronous_commit = off; set maintenance_work_mem = '1GB'")
        print(str(await conn.fetchval("select version()")).split(" on ")[0], flush=True)
        print("plain:", flush=True)
        plain = await build_plain(conn, settings)
        print(f"partitioned by {settings.partition_blocks:,} blocks:", flush=True)
        part = await build_partitioned(conn, settings)
        print("\n| build step | plain s | partitioned s |\n|---|---:|---:|")
        for step in plain:
            print(f"| {step} | {plain[step]:.1f} | {part[step]:.1f} |")
        marks = await landmarks(conn, settings)
        await report_data(conn, marks)
        return marks
    finally:
        await conn.close()


async def session(url: str) -> asyncpg.Connection:
    """A connection set up as the indexer's sessions are (no JIT, custom plans)."""
    return await asyncpg.connect(url, timeout=10, server_settings=dict(_TUNING))


async def bench(url: str, settings: Settings) -> None:
    marks = await prepare(url, settings)
    layouts = [Layout(name, await session(url)) for name in ("plain", "partitioned")]
    try:
        await layouts[1].conn.execute("set search_path = part, public")
        cases = [*write_path(marks, settings), *rewinds(marks, settings), *reads(marks)]
        print(f"\nmeasuring: warm-up, then median of {settings.runs} runs (3 for slow ones)")
        for case in cases:
            await measure(case, layouts, 3 if case.slow else settings.runs)
        print("\n" + results_table(cases, layouts))
        print("\n| d | vacuum after a committed rewind | rows | plain s | partitioned s |")
        print("|---|---|---:|---:|---:|")
        for label, fork in (
            ("last 128 blocks", marks.tip - 128),
            ("deep", marks.partitions[-1] - 1),
        ):
            done = [await vacuum_after_rewind(layout, fork) for layout in layouts]
            print(f"| d | {label} | {done[0][0]:,} | {done[0][1]:.2f} | {done[1][1]:.2f} |")
        if settings.plans is not None:
            settings.plans.parent.mkdir(exist_ok=True)
            settings.plans.write_text(plans_markdown(cases, layouts))
            print(f"\nplans: {settings.plans}")
    finally:
        for layout in layouts:
            await layout.conn.close()


async def run(settings: Settings) -> None:
    """In a database of its own, dropped at the end unless `keep`."""
    admin_dsn = pg.find_server().admin_dsn
    name = f"audifi_partitioning_{os.getpid()}"
    admin = await pg.connect(admin_dsn)
    await admin.execute(f'create database "{name}"')
    started = time.perf_counter()
    try:
        url = pg.database_url(admin_dsn, name)
        await pg.migrate_to_head(url)
        await bench(url, settings)
    finally:
        if settings.keep:
            print(f"kept the database {name}: drop it yourself")
        else:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
        print(f"\n{time.perf_counter() - started:.0f} s in all")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.partitioning", description=__doc__)
    parser.add_argument("--txs", type=int, default=1_000_000, help="transactions (10 events each)")
    parser.add_argument("--partition-blocks", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per statement")
    parser.add_argument("--plans", type=Path, default=PLANS, help="where the plans go")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args(argv)
    if args.txs < 20 * BATCH_TXS or args.partition_blocks < 1 or args.runs < 1:
        parser.error(f"--txs at least {20 * BATCH_TXS}, --partition-blocks and --runs at least 1")
    logs.configure(level="warning")  # the migrations' info lines are not the benchmark's
    asyncio.run(run(Settings(args.txs, args.partition_blocks, args.runs, args.plans, args.keep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
