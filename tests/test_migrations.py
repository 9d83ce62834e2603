"""The schema and its runner, against a real PostgreSQL (issue 3, "Done when")."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from indexer.migrate import (
    ChecksumMismatchError,
    load_migrations,
    migrate_down,
    migrate_up,
    migration_status,
    pending_versions,
)
from tests.helpers import pg

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "database-interfaces.md"
# §1.1 of the seeds, for checkouts without ../shared beside them.
SEED_TABLES = [
    *("users", "accounts", "roles", "user_roles"),
    *("artists", "producers", "artist_follows"),
    *("masters", "master_collaborators", "master_ipos", "master_contracts"),
    *("master_nfts", "nft_transfers"),
    *("revenue_events", "dividend_events", "dividend_claims"),
    *("artist_tokens", "token_holders"),
    "vstudio_*",
    *("subscriptions", "invoices", "payment_*"),
    "webhooks_log",
]
ALL_VERSIONS = [m.version for m in load_migrations()]
UINT256_MAX = Decimal(2**256 - 1)


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await pg.connect(empty_database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def migrated(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await pg.connect(database_url)
    yield conn
    await conn.close()


def seed_tables() -> list[str]:
    """The table names in the seeds' service-to-table mapping (§1.1)."""
    if not SEEDS.exists():
        return SEED_TABLES
    section = SEEDS.read_text().split("### 1.1", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| **")]
    return [name for row in rows for name in re.findall(r"`([a-z_*]+)`", row[2])]


async def test_up_creates_every_table_in_the_seeds(conn: asyncpg.Connection) -> None:
    assert await migrate_up(conn) == ALL_VERSIONS
    tables = set(
        await conn.fetchval(
            "select array_agg(relname::text) from pg_class"
            " where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')"
        )
    )
    expected = seed_tables()
    assert len(expected) >= len(SEED_TABLES)

    def exists(name: str) -> bool:
        if name.endswith("*"):
            return any(table.startswith(name[:-1]) for table in tables)
        return name in tables

    assert [name for name in expected if not exists(name)] == []
    assert await pending_versions(conn) == []


async def test_each_down_restores_the_schema_before_its_up(conn: asyncpg.Connection) -> None:
    await migrate_up(conn, to=0)
    schema_before = {0: await catalog(conn)}
    for version in ALL_VERSIONS:
        assert await migrate_up(conn, to=version) == [version]
        schema_before[version] = await catalog(conn)
    previous_of = dict(zip(ALL_VERSIONS, [0, *ALL_VERSIONS[:-1]], strict=True))
    for version in reversed(ALL_VERSIONS):
        assert await migrate_down(conn, to=previous_of[version]) == [version]
        assert await catalog(conn) == schema_before[previous_of[version]], f"down of {version}"


async def test_up_down_up_gives_the_identical_schema(
    conn: asyncpg.Connection, empty_database_url: str
) -> None:
    dump = await schema_dumper(conn, empty_database_url)
    await migrate_up(conn)
    first = await dump()
    assert await migrate_down(conn, to=0) == ALL_VERSIONS[::-1]
    assert await conn.fetchval("select count(*) from schema_migrations") == 0
    await migrate_up(conn)
    assert await dump() == first


async def test_concurrent_runners_apply_each_migration_once(empty_database_url: str) -> None:
    first, second = await pg.connect(empty_database_url), await pg.connect(empty_database_url)
    try:
        results = await asyncio.gather(migrate_up(first), migrate_up(second))
        versions = await first.fetch("select version from schema_migrations order by version")
    finally:
        await first.close()
        await second.close()
    # They take turns migration by migration (the lock is per migration's transaction):
    # between them each version once, each runner's in order.
    assert sorted(results[0] + results[1]) == ALL_VERSIONS
    assert all(applied == sorted(applied) for applied in results)
    assert [r["version"] for r in versions] == ALL_VERSIONS


async def test_an_edited_applied_migration_is_refused(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(load_migrations()[0].up_path.parent, directory)
    await migrate_up(conn, to=2, directory=directory)
    edited = next(directory.glob("0002_*.up.sql"))
    edited.write_text(edited.read_text() + "\n-- an afterthought\n")

    with pytest.raises(ChecksumMismatchError, match=re.escape(edited.name)):
        await migrate_up(conn, directory=directory)
    with pytest.raises(ChecksumMismatchError, match=re.escape(edited.name)):
        await pending_versions(conn, directory=directory)
    status = {s.version: s.checksum_ok for s in await migration_status(conn, directory=directory)}
    assert status[1] is True and status[2] is False and status[3] is None
    assert await conn.fetchval("select max(version) from schema_migrations") == 2


async def test_rls_shows_a_role_only_its_artists_masters(migrated: asyncpg.Connection) -> None:
    mine, theirs = await make_master(migrated), await make_master(migrated)
    role = f"audifi_test_rls_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await migrated.execute(f'create role "{role}" nologin')
    try:
        await migrated.execute(f'grant select, insert on masters, artists to "{role}"')
        assert await visible_masters(migrated, role, user_id=None) == set()
        assert await visible_masters(migrated, role, user_id=mine.user_id) == {mine.master_id}
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with migrated.transaction():
                await as_role(migrated, role, user_id=mine.user_id)
                await migrated.execute(
                    "insert into masters (artist_id, title) values ($1, 'not mine')",
                    theirs.artist_id,
                )
    finally:
        await migrated.execute(f'drop owned by "{role}"; drop role "{role}"')
    everything = await migrated.fetch("select id from masters")
    assert {r["id"] for r in everything} == {mine.master_id, theirs.master_id}


async def test_audit_logs_are_append_only(migrated: asyncpg.Connection) -> None:
    await migrated.execute(
        "insert into audit_logs (action, target_type, target_id)"
        " values ('create_master_with_ipo', 'master', gen_random_uuid())"
    )
    for statement in (
        "update audit_logs set action = 'something else'",
        "delete from audit_logs",
        "truncate audit_logs",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await migrated.execute(statement)
    assert await migrated.fetchval("select action from audit_logs") == "create_master_with_ipo"


async def test_dashboards_refresh_concurrently_while_read(
    migrated: asyncpg.Connection, database_url: str
) -> None:
    made = await make_master(migrated)
    await insert_master_contract(migrated, made.master_id, minted=3)
    ipo_minted = await migrated.fetchval(
        "insert into master_ipos (master_id, total_supply, revenue_share_nft_holders_bps)"
        " values ($1, 10, 5000) returning minted_supply",
        made.master_id,
    )
    assert ipo_minted == 3  # filled from master_contracts by the insert trigger
    reader = await pg.connect(database_url)
    try:
        async with reader.transaction():
            await reader.fetch("select * from artist_performance")
            await reader.fetch("select * from master_ipo_stats")
            await migrated.execute("set lock_timeout = '5s'")
            await migrated.execute("refresh materialized view concurrently artist_performance")
            await migrated.execute("refresh materialized view concurrently master_ipo_stats")
    finally:
        await reader.close()
    artist = await migrated.fetchrow(
        "select * from artist_performance where artist_id = $1", made.artist_id
    )
    ipo = await migrated.fetchrow(
        "select * from master_ipo_stats where master_id = $1", made.master_id
    )
    assert artist is not None and ipo is not None
    assert (artist["masters_count"], artist["nfts_minted"]) == (1, 3)
    assert (ipo["minted_supply"], ipo["minted_bps"]) == (3, 3000)


async def test_uint256_max_round_trips_through_every_numeric_78_column(
    migrated: asyncpg.Connection,
) -> None:
    columns = await migrated.fetch(
        "select c.relname::text as table_name, a.attname::text as column_name"
        " from pg_attribute as a join pg_class as c on c.oid = a.attrelid"
        " where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')"
        "   and not c.relispartition and a.attnum > 0 and not a.attisdropped"
        "   and format_type(a.atttypid, a.atttypmod) = 'numeric(78,0)'"
        " order by 1, 2"
    )
    assert len(columns) > 15
    # Foreign keys and triggers off: this checks the type and the CHECKs of
    # each column, not the row's relations or derived values.
    await migrated.execute("set session_replication_role = replica")
    for table, column in columns:
        async with TransactionRolledBack(migrated):
            stored = await insert_with(migrated, table, column, UINT256_MAX)
        assert stored == UINT256_MAX, f"{table}.{column}"


class TransactionRolledBack:
    """A transaction that always rolls back, so each probe row leaves nothing behind."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._transaction = conn.transaction()

    async def __aenter__(self) -> None:
        await self._transaction.start()

    async def __aexit__(self, *exc: object) -> None:
        await self._transaction.rollback()


async def insert_with(conn: asyncpg.Connection, table: str, column: str, value: Decimal) -> Any:
    """Inserts a row whose `column` is `value`, filling required columns to pass the CHECKs."""
    required = await conn.fetch(
        "select attname::text as name, format_type(atttypid, atttypmod) as type"
        " from pg_attribute where attrelid = $1::regclass and attnum > 0"
        " and not attisdropped and attnotnull and not atthasdef",
        table,
    )
    checks = " ".join(
        await conn.fetchval(
            "select coalesce(array_agg(pg_get_constraintdef(oid)), '{}') from pg_constraint"
            " where conrelid = $1::regclass and contype = 'c'",
            table,
        )
    )
    values = {r["name"]: placeholder(r["name"], r["type"], checks) for r in required}
    values[column] = value
    names = ", ".join(f'"{name}"' for name in values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await conn.fetchval(
        f'insert into "{table}" ({names}) values ({params}) returning "{column}"', *values.values()
    )


def placeholder(column: str, type_name: str, checks: str) -> Any:
    """A value of `type_name` that passes the checks this schema puts on `column`."""
    if type_name == "bytea":
        length = re.search(rf"octet_length\({column}\) = (\d+)", checks)
        return os.urandom(int(length[1]) if length else 32)
    if type_name == "text":
        allowed = re.search(rf"\({column} = ANY \(ARRAY\['([^']*)'", checks)
        return allowed[1] if allowed else "x"
    simple: dict[str, Any] = {
        "uuid": uuid.uuid4(),
        "bigint": 1,
        "integer": 1,
        "smallint": 1,
        "numeric(78,0)": Decimal(1),
        "boolean": False,
        "timestamp with time zone": datetime.now(UTC),
        "date": date.today(),
        "jsonb": "{}",
        "bytea[]": [os.urandom(32)],
    }
    if type_name not in simple:
        raise AssertionError(f"teach placeholder() a value for {type_name} ({column})")
    return simple[type_name]


@dataclass(frozen=True, slots=True)
class Made:
    user_id: uuid.UUID
    artist_id: uuid.UUID
    master_id: uuid.UUID


async def make_master(conn: asyncpg.Connection) -> Made:
    """A user, their artist and one master."""
    user_id = await conn.fetchval(
        "insert into users (email) values ($1) returning id", f"{uuid.uuid4().hex}@example.com"
    )
    artist_id = await conn.fetchval(
        "insert into artists (user_id, artist_name, slug)"
        " values ($1, 'An Artist', $2) returning id",
        user_id,
        uuid.uuid4().hex,
    )
    master_id = await conn.fetchval(
        "insert into masters (artist_id, title) values ($1, 'A Master') returning id", artist_id
    )
    return Made(user_id, artist_id, master_id)


async def insert_master_contract(
    conn: asyncpg.Connection, master_id: uuid.UUID, minted: int
) -> None:
    await conn.execute(
        "insert into master_contracts (chain_id, block_number, block_hash, block_timestamp,"
        " tx_hash, log_index, master_id, nft_address, distributor_address, total_supply,"
        " minted_supply) values (1, 1, $1, now(), $2, 0, $3, $4, $5, 10, $6)",
        os.urandom(32),
        os.urandom(32),
        master_id,
        os.urandom(20),
        os.urandom(20),
        minted,
    )


async def as_role(conn: asyncpg.Connection, role: str, *, user_id: uuid.UUID | None) -> None:
    await conn.execute(f'set local role "{role}"')
    await conn.execute("select set_config('app.user_id', $1, true)", str(user_id or ""))


async def visible_masters(
    conn: asyncpg.Connection, role: str, *, user_id: uuid.UUID | None
) -> set[uuid.UUID]:
    async with conn.transaction():
        await as_role(conn, role, user_id=user_id)
        return {r["id"] for r in await conn.fetch("select id from masters")}


async def schema_dumper(conn: asyncpg.Connection, url: str) -> Callable[[], Awaitable[str]]:
    """A function returning the database's pg_dump --schema-only, normalised."""
    server_major = int(await conn.fetchval("show server_version_num")) // 10000
    pg_dump = pg.pg_tool("pg_dump", server_major)

    async def dump() -> str:
        proc = await asyncio.create_subprocess_exec(
            pg_dump,
            "--schema-only",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return normalise(out.decode())

    return dump


def normalise(dump: str) -> str:
    """pg_dump output without comments, session settings and per-run tokens."""
    noise = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")
    return "\n".join(line for line in dump.splitlines() if line and not line.startswith(noise))


# Every definition in the public schema, one line each: a pg_dump in one query,
# for comparing many schema states quickly.
_CATALOG = """
select array_agg(line order by line) from (
    select format('relation %s %s rls=%s bound=%s key=%s', c.relname, c.relkind,
                  c.relrowsecurity, pg_get_expr(c.relpartbound, c.oid),
                  case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end)
    from pg_class as c
    where c.relnamespace = 'public'::regnamespace
    union all
    select format('column %s.%s %s notnull=%s default=%s', c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid))
    from pg_attribute as a
    join pg_class as c on c.oid = a.attrelid
    left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where c.relnamespace = 'public'::regnamespace and a.attnum > 0 and not a.attisdropped
    union all
    select format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    from pg_constraint
    where connamespace = 'public'::regnamespace
    union all
    select pg_get_indexdef(i.indexrelid)
    from pg_index as i
    join pg_class as c on c.oid = i.indexrelid
    where c.relnamespace = 'public'::regnamespace
    union all
    select pg_get_triggerdef(t.oid)
    from pg_trigger as t
    join pg_class as c on c.oid = t.tgrelid
    where c.relnamespace = 'public'::regnamespace and not t.tgisinternal
    union all
    select pg_get_functiondef(p.oid)
    from pg_proc as p
    where p.pronamespace = 'public'::regnamespace
    union all
    select format('view %s %s', c.relname, pg_get_viewdef(c.oid))
    from pg_class as c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('v', 'm')
    union all
    select format('policy %s %s %s %s', tablename, policyname, cmd, qual)
    from pg_policies
    where schemaname = 'public'
) as definitions (line)
"""


async def catalog(conn: asyncpg.Connection) -> list[str]:
    """Every definition in the public schema, sorted."""
    return list(await conn.fetchval(_CATALOG))


async def test_updated_at_is_kept_true_for_any_writer_and_free_for_the_indexer(
    database_url: str,
) -> None:
    """0017: on the tables only the indexer writes, the updated_at trigger runs only when
    the writer did not set updated_at itself (the indexer always does, in its upserts)."""
    conn = await pg.connect(database_url)
    try:
        key = (1, b"\x01" * 20, b"\x02" * 20)
        await conn.execute(
            "insert into token_holders (chain_id, token_address, holder_address, balance, "
            "updated_block, updated_at) values ($1, $2, $3, 5, 1, '2001-01-01Z')",
            *key,
        )
        where = "where chain_id = $1 and token_address = $2 and holder_address = $3"
        await conn.execute(f"update token_holders set balance = 6 {where}", *key)
        bumped = await conn.fetchval(f"select updated_at from token_holders {where}", *key)
        assert bumped > datetime(2020, 1, 1, tzinfo=UTC)  # not set by the writer: now()
        await conn.execute(
            f"update token_holders set balance = 7, updated_at = '2002-02-02Z' {where}", *key
        )
        kept = await conn.fetchval(f"select updated_at from token_holders {where}", *key)
        assert kept == datetime(2002, 2, 2, tzinfo=UTC)  # set by the writer: its value
        fillfactor = await conn.fetchval(
            "select reloptions from pg_class where relname = 'token_holders'"
        )
        assert fillfactor == ["fillfactor=80"]
    finally:
        await conn.close()
