"""`python -m tests.bench.queryplans`: the backend's read queries on a 1M-event index.

Builds a synthetic index in a fresh database (created here, migrated with the project's
runner, dropped at the end): 58 masters on two chains with skewed sizes (~200k NFTs), 58
artist coins (~54k holder rows), ~2,000 dividends and their claims, mint rows plus
transfers in nft_transfers / token_transfers to ~1M raw events, and skewed ownership (a
few whales with thousands of NFTs, a long tail). Set-based `insert ... select ... from
generate_series`, seeded, then `vacuum analyze`. Then each query of sql/queries runs
with representative parameters, once to warm up and three times under
EXPLAIN (ANALYZE, BUFFERS); sql/queries/PLANS.md gets every plan and the median, and the
summary table in sql/queries/README.md (between its plans markers) is rewritten.

The synthetic ownership is not derived from the synthetic transfers (the queries read
each table as it is; cardinalities and skew are what matter for the plans).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from indexer.backend_queries import QUERIES_DIR, Query, load_queries
from tests.helpers import pg

RUNS = 3
PLANS_MD = QUERIES_DIR / "PLANS.md"
README_MD = QUERIES_DIR / "README.md"
BEGIN, END = "<!-- plans:begin -->", "<!-- plans:end -->"
RAW_TABLES = ("nft_transfers", "token_transfers", "dividend_events", "dividend_claims")
# Tables big enough that a sequential scan of one is a missing index, not a choice.
# (dividend_events is not: ~2,000 rows per 1M events, hashing all of it is the right plan.)
BIG_TABLES = ("nft_transfers", "token_transfers", "dividend_claims", "master_nfts", "token_holders")

# The synthetic index, step by step. pg_temp.addr(kind, i) is a deterministic address.
BUILD: tuple[tuple[str, str], ...] = (
    (
        "helpers",
        """
        select setseed(0.42);
        create function pg_temp.addr(kind text, i bigint) returns bytea
        language sql immutable as $$ select substring(sha256((kind || ':' || i)::bytea)
                                         from 1 for 20) $$;
        create function pg_temp.hash32(kind text, i bigint) returns bytea
        language sql immutable as $$ select sha256((kind || ':' || i)::bytea) $$;
        create function pg_temp.ts(block bigint) returns timestamptz
        language sql immutable as $$ select timestamptz '2025-01-01 00:00:00+00'
                                         + block * interval '2 seconds' $$;
        create function pg_temp.chain(i bigint) returns bigint
        language sql immutable as $$ select case when i <= 55 then 1 else 8453 end::bigint $$;
        """,
    ),
    (
        "users, wallets, artists, masters",
        """
        -- 40k users; holder h belongs to user ((h - 1) % 40000) + 1, so users 1..20000
        -- have two wallets (holders u and u + 40000).
        insert into users (id, email, display_name)
        select md5('user' || u)::uuid, 'user' || u || '@example.com', 'User ' || u
        from generate_series(1, 40000) as u;
        insert into user_wallets (user_id, address, verified_at)
        select md5('user' || (((h - 1) % 40000) + 1))::uuid, pg_temp.addr('holder', h), now()
        from generate_series(1, 60000) as h;
        insert into artists (id, user_id, artist_name, slug)
        select md5('artist' || a)::uuid, md5('user' || a)::uuid, 'Artist ' || a, 'artist-' || a
        from generate_series(1, 58) as a;
        -- The 58 deployed masters are published; 4 more per artist are drafts or archived.
        insert into masters (id, artist_id, title, genre, status, created_at)
        select md5('master' || m)::uuid, md5('artist' || m)::uuid, 'Master ' || m, 'pop',
               'published', timestamptz '2025-01-01' + m * interval '1 day'
        from generate_series(1, 58) as m;
        insert into masters (artist_id, title, status, created_at)
        select md5('artist' || (1 + i % 58))::uuid, 'Draft ' || i,
               case when i % 3 = 0 then 'archived' else 'draft' end,
               timestamptz '2025-01-01' + i * interval '1 hour'
        from generate_series(1, 232) as i;
        """,
    ),
    (
        "master_nfts (~200k, skewed masters and owners)",
        """
        create temporary table nft_draw as
        select k,
               1 + floor(58 * power(random(), 2))::int as m,
               1 + floor(60000 * power(random(), 3))::int as holder,
               random() < 0.02 as burned
        from generate_series(1, 200000) as k;
        create temporary table nft as
        select k, m, holder, burned, row_number() over (partition by m order by k) as token_id
        from nft_draw;
        insert into master_nfts (chain_id, contract_address, token_id, master_id,
            owner_address, is_burned, minted_block, minted_at, mint_tx_hash,
            last_transfer_block, last_transfer_log_index, last_transfer_at,
            last_transfer_tx_hash)
        select pg_temp.chain(m), pg_temp.addr('nft', m), token_id, md5('master' || m)::uuid,
               case when burned then '\\x0000000000000000000000000000000000000000'::bytea
                    else pg_temp.addr('holder', holder) end,
               burned, k, pg_temp.ts(k), pg_temp.hash32('mint', k),
               k + 300000, 0, pg_temp.ts(k + 300000), pg_temp.hash32('last', k)
        from nft;
        insert into master_contracts (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, master_id, nft_address, distributor_address, total_supply,
            minted_supply, burned_supply)
        select pg_temp.chain(m), m, pg_temp.hash32('block', m), pg_temp.ts(m),
               pg_temp.hash32('deploy', m), 0, md5('master' || m)::uuid,
               pg_temp.addr('nft', m), pg_temp.addr('distributor', m),
               count(*) + 100, count(*), count(*) filter (where burned)
        from nft
        group by m;
        insert into master_ipos (master_id, chain_id, status, total_supply, mint_price,
            payment_token_address, revenue_share_nft_holders_bps)
        select master_id, chain_id, case when block_number % 3 = 0 then 'completed'
                                         else 'live' end,
               total_supply, 10000000000000000, '\\x0000000000000000000000000000000000000000',
               5000
        from master_contracts;
        insert into master_ipos (master_id, chain_id, status, total_supply,
            revenue_share_nft_holders_bps, created_at)
        select master_id, chain_id, 'cancelled', total_supply, 5000, now() - interval '1 year'
        from master_contracts
        where block_number % 5 = 0;
        """,
    ),
    (
        "nft_transfers (mints, ~250k transfers, burns)",
        """
        insert into nft_transfers (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, contract_address, token_id, from_address, to_address)
        select pg_temp.chain(m), k, pg_temp.hash32('block', k), pg_temp.ts(k),
               pg_temp.hash32('mint', k), 0, pg_temp.addr('nft', m), token_id,
               '\\x0000000000000000000000000000000000000000', pg_temp.addr('holder', holder)
        from nft;
        insert into nft_transfers (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, contract_address, token_id, from_address, to_address)
        select pg_temp.chain(n.m), 200000 + t, pg_temp.hash32('block', 200000 + t),
               pg_temp.ts(200000 + t), pg_temp.hash32('nft-transfer', t), 0,
               pg_temp.addr('nft', n.m), n.token_id,
               pg_temp.addr('holder', 1 + floor(60000 * power(random(), 3))::int),
               pg_temp.addr('holder', 1 + floor(60000 * power(random(), 3))::int)
        from (select t, 1 + floor(200000 * power(random(), 1.5))::int as k
              from generate_series(1, 250000) as t) as draw
        join nft as n on n.k = draw.k;
        insert into nft_transfers (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, contract_address, token_id, from_address, to_address)
        select pg_temp.chain(m), 460000 + k, pg_temp.hash32('block', 460000 + k),
               pg_temp.ts(460000 + k), pg_temp.hash32('burn', k), 0, pg_temp.addr('nft', m),
               token_id, pg_temp.addr('holder', holder),
               '\\x0000000000000000000000000000000000000000'
        from nft
        where burned;
        """,
    ),
    (
        "artist coins, token_holders (~54k), token_transfers (~400k)",
        """
        insert into artist_tokens (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, artist_id, token_address, symbol, decimals, total_supply)
        select pg_temp.chain(a), a, pg_temp.hash32('block', a), pg_temp.ts(a),
               pg_temp.hash32('coin', a), 1, md5('artist' || a)::uuid,
               pg_temp.addr('coin', a), 'C' || lpad(a::text, 3, '0'),
               (array[18, 18, 18, 6, 8, 0])[1 + a % 6], 0
        from generate_series(1, 58) as a;
        -- Holders 1..20 hold every coin; the others one coin each, coins skewed.
        insert into token_holders (chain_id, token_address, holder_address, balance,
            updated_block)
        select pg_temp.chain(coin), pg_temp.addr('coin', coin), pg_temp.addr('holder', h),
               case when random() < 0.05 then 0
                    else floor(random() * 1e24)::numeric(78, 0) + 1 end,
               h
        from (select h, 1 + floor(58 * power(random(), 2))::int as coin
              from generate_series(21, 52860) as h) as one_coin
        union all
        select pg_temp.chain(coin), pg_temp.addr('coin', coin), pg_temp.addr('holder', h),
               floor(random() * 1e30)::numeric(78, 0) + 1, h
        from generate_series(1, 20) as h, generate_series(1, 58) as coin;
        update artist_tokens as t
        set total_supply = s.supply
        from (select chain_id, token_address, sum(balance) as supply
              from token_holders group by chain_id, token_address) as s
        where s.chain_id = t.chain_id and s.token_address = t.token_address;
        insert into token_transfers (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, token_address, from_address, to_address, value)
        select pg_temp.chain(coin), 500000 + t, pg_temp.hash32('block', 500000 + t),
               pg_temp.ts(500000 + t), pg_temp.hash32('coin-transfer', t), 0,
               pg_temp.addr('coin', coin),
               case when t % 10 = 0 then '\\x0000000000000000000000000000000000000000'::bytea
                    else pg_temp.addr('holder', 1 + floor(52860 * random())::int) end,
               pg_temp.addr('holder', 1 + floor(52860 * random())::int),
               floor(random() * 1e21)::numeric(78, 0)
        from (select t, 1 + floor(58 * power(random(), 2))::int as coin
              from generate_series(1, 400000) as t) as draw;
        """,
    ),
    (
        "dividends (~2,000) and claims (~2.5% of each dividend's shares)",
        """
        create temporary table dividend as
        select d, m, row_number() over (partition by m order by d) as dividend_id,
               floor(random() * 1e15)::numeric(78, 0) + 1 as per_share,
               case when random() < 0.7 then '\\x0000000000000000000000000000000000000000'::bytea
                    else pg_temp.addr('coin', 1 + floor(58 * random())::int) end as token
        from (select d, 1 + floor(58 * random())::int as m
              from generate_series(1, 2000) as d) as draw;
        insert into dividend_events (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, distributor_address, dividend_id, payer_address,
            token_address, amount, amount_per_share)
        select pg_temp.chain(v.m), 900000 + v.d * 10, pg_temp.hash32('block', 900000 + v.d * 10),
               pg_temp.ts(900000 + v.d * 10), pg_temp.hash32('deposit', v.d), 0,
               pg_temp.addr('distributor', v.m), v.dividend_id, pg_temp.addr('payer', v.m),
               v.token, v.per_share * c.total_supply, v.per_share
        from dividend as v
        join master_contracts as c on c.distributor_address = pg_temp.addr('distributor', v.m);
        insert into dividend_claims (chain_id, block_number, block_hash, block_timestamp,
            tx_hash, log_index, distributor_address, dividend_id, holder_address, token_id,
            amount)
        select pg_temp.chain(v.m), 900000 + v.d * 10 + 1,
               pg_temp.hash32('block', 900000 + v.d * 10 + 1),
               pg_temp.ts(900000 + v.d * 10 + 1), pg_temp.hash32('claim', v.d * 1000000 + n.k),
               0, pg_temp.addr('distributor', v.m), v.dividend_id,
               pg_temp.addr('holder', n.holder), n.token_id, v.per_share
        from dividend as v
        join nft as n on n.m = v.m and not n.burned
        where random() < 0.025;
        insert into dividend_totals (chain_id, distributor_address, dividend_id,
            claimed_amount, claims_count)
        select chain_id, distributor_address, dividend_id, sum(amount), count(*)
        from dividend_claims
        group by chain_id, distributor_address, dividend_id;
        insert into dividend_holder_totals (chain_id, distributor_address, holder_address,
            claimed_amount, claims_count)
        select chain_id, distributor_address, holder_address, sum(amount), count(*)
        from dividend_claims
        group by chain_id, distributor_address, holder_address;
        """,
    ),
)

# Representative parameters, chosen from the data: (case label, SQL giving the args).
_WHALE = "select md5('user1')::uuid"
_TYPICAL = """
    select w.user_id from user_wallets as w
    join master_nfts as n on n.chain_id = 1 and n.owner_address = w.address
    group by w.user_id having count(*) between 3 and 6 order by w.user_id limit 1
"""
_BIGGEST_MASTER = "select master_id from master_contracts order by minted_supply desc limit 1"
_TYPICAL_MASTER = """
    select master_id from master_contracts order by minted_supply, master_id
    offset (select count(*) / 2 from master_contracts) limit 1
"""
_BIGGEST_COIN = """
    select chain_id, '0x' || encode(token_address, 'hex') from token_holders
    group by chain_id, token_address order by count(*) desc limit 1
"""
_BUSIEST_NFT = """
    select chain_id, '0x' || encode(contract_address, 'hex'), token_id::text from nft_transfers
    group by chain_id, contract_address, token_id order by count(*) desc limit 1
"""
CASES: dict[str, list[tuple[str, str]]] = {
    "wallet_nfts": [
        ("whale, first page of 100", f"select ({_WHALE}), 0::bigint, '0x', '-1', 100"),
        ("typical user", f"select ({_TYPICAL}), 0::bigint, '0x', '-1', 100"),
    ],
    "wallet_coin_balances": [
        ("whale", f"select ({_WHALE}), 100"),
        ("typical user", f"select ({_TYPICAL}), 100"),
    ],
    "wallet_dividends": [
        ("whale", f"select ({_WHALE})"),
        ("typical user", f"select ({_TYPICAL})"),
    ],
    "master_holders": [
        ("biggest master, top 50", f"select ({_BIGGEST_MASTER}), 50"),
        ("median master, top 50", f"select ({_TYPICAL_MASTER}), 50"),
    ],
    "master_ipo_progress": [
        ("biggest master", f"select ({_BIGGEST_MASTER})"),
        ("median master", f"select ({_TYPICAL_MASTER})"),
    ],
    "nft_history": [
        ("most transferred NFT", f"select *, -1::bigint, -1, 50 from ({_BUSIEST_NFT}) as t"),
    ],
    "coin_top_holders": [
        ("biggest coin, top 50", f"select *, 50 from ({_BIGGEST_COIN}) as t"),
    ],
    "marketplace_listing": [
        (
            "first page of 20",
            "select 'infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid, 20",
        ),
    ],
}


@dataclass(frozen=True, slots=True)
class Measured:
    query: Query
    case: str
    args: tuple[Any, ...]
    plan: str
    median_ms: float
    runs_ms: tuple[float, ...]
    indexes: tuple[str, ...]
    seq_scans: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.median_ms <= self.query.budget_ms and not self.seq_scans


async def build(conn: asyncpg.Connection) -> dict[str, int]:
    """Fills the migrated database with the synthetic index; the row count of each table."""
    await conn.execute("set synchronous_commit = off; set maintenance_work_mem = '512MB'")
    for label, sql in BUILD:
        started = time.perf_counter()
        await conn.execute(sql)
        print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
    await conn.execute("vacuum analyze")
    counts = {}
    for table in (*RAW_TABLES, "master_nfts", "token_holders", "master_contracts", "users"):
        counts[table] = int(await conn.fetchval(f"select count(*) from {table}"))
    return counts


async def measure(conn: asyncpg.Connection, query: Query, case: str, args_sql: str) -> Measured:
    """One warm-up run, then RUNS runs under EXPLAIN (ANALYZE, BUFFERS)."""
    row = await conn.fetchrow(args_sql)
    assert row is not None, f"no parameters for {query.name} / {case}"
    args = tuple(row)
    await conn.fetch(query.sql, *args)
    plans, times = [], []
    for _ in range(RUNS):
        lines = await conn.fetch(f"explain (analyze, buffers) {query.sql}", *args)
        plan = "\n".join(r[0] for r in lines)
        plans.append(plan)
        match = re.search(r"Execution Time: ([\d.]+) ms", plan)
        assert match is not None, plan
        times.append(float(match[1]))
    median = statistics.median(times)
    plan = plans[times.index(sorted(times)[len(times) // 2])]
    indexes = tuple(
        dict.fromkeys(
            re.findall(
                r"(?:Index(?: Only)? Scan|Bitmap Index Scan)"
                r"(?: Backward)? (?:using|on) (\w+)",
                plan,
            )
        )
    )
    seq = tuple(t for t in dict.fromkeys(re.findall(r"Seq Scan on (\w+)", plan)) if t in BIG_TABLES)
    return Measured(query, case, args, plan, median, tuple(times), indexes, seq)


def summary_table(results: Sequence[Measured]) -> str:
    lines = [
        "| query | case | budget | median | indexes used | ok |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in results:
        verdict = (
            "yes"
            if r.ok
            else ("seq scan: " + ", ".join(r.seq_scans) if r.seq_scans else "over budget")
        )
        lines.append(
            f"| `{r.query.name}` | {r.case} | {r.query.budget_ms:g} ms | {r.median_ms:.2f} ms"
            f" | {', '.join(f'`{i}`' for i in r.indexes) or '—'} | {verdict} |"
        )
    return "\n".join(lines)


def plans_markdown(results: Sequence[Measured], counts: dict[str, int], server: str) -> str:
    out = [
        "# Query plans on a 1M-event index",
        "",
        "Generated by `.venv/bin/python -m tests.bench.queryplans` (do not edit: rerun it).",
        "It builds a synthetic index in a fresh database (see the module's docstring), runs",
        f"each query once to warm up, then {RUNS} times under `EXPLAIN (ANALYZE, BUFFERS)`;",
        "the plan shown is the median run's.",
        "",
        f"Server: {server}. Rows: "
        + ", ".join(f"{table} {n:,}" for table, n in counts.items())
        + f"; raw events in total: {sum(counts[t] for t in RAW_TABLES):,}.",
        "",
        summary_table(results),
        "",
    ]
    for r in results:
        runs = ", ".join(f"{t:.2f}" for t in r.runs_ms)
        out += [
            f"## {r.query.name}: {r.case}",
            "",
            f"Budget {r.query.budget_ms:g} ms; median {r.median_ms:.2f} ms (runs: {runs} ms).",
            f"Parameters: `{', '.join(repr(a) if isinstance(a, str) else str(a) for a in r.args)}`",
            "",
            "```",
            r.plan,
            "```",
            "",
        ]
    return "\n".join(out)


def write_readme_summary(table: str) -> None:
    text = README_MD.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README_MD} lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README_MD.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


async def run(admin_dsn: str, *, write: bool, keep: bool = False) -> list[Measured]:
    name = f"audifi_queryplans_{os.getpid()}"
    admin = await pg.connect(admin_dsn)
    await admin.execute(f'create database "{name}"')
    try:
        url = pg.database_url(admin_dsn, name)
        await pg.migrate_to_head(url)
        conn = await pg.connect(url)
        try:
            print(f"building the synthetic index in {name}", flush=True)
            started = time.perf_counter()
            counts = await build(conn)
            print(f"built in {time.perf_counter() - started:.0f} s: {counts}", flush=True)
            server = str(await conn.fetchval("select version()")).split(" on ")[0]
            queries = load_queries()
            missing = set(queries) - set(CASES)
            if missing:
                raise SystemExit(f"no benchmark cases for {sorted(missing)}")
            results = [
                await measure(conn, queries[q], case, sql)
                for q, cases in CASES.items()
                for case, sql in cases
            ]
        finally:
            await conn.close()
    finally:
        if keep:
            print(f"kept the database {name}: drop it yourself")
        else:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
    print(summary_table(results))
    if write:
        PLANS_MD.write_text(plans_markdown(results, counts, server))
        write_readme_summary(summary_table(results))
        print(f"wrote {PLANS_MD} and the summary in {README_MD}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.queryplans")
    parser.add_argument("--no-write", action="store_true", help="print, write no file")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic database")
    options = parser.parse_args(argv)
    admin_dsn = pg.find_server().admin_dsn
    results = asyncio.run(run(admin_dsn, write=not options.no_write, keep=options.keep))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
