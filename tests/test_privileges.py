"""Least privilege (migration 0012): the indexer's role can do what indexing needs and
nothing else, and a real backfill runs as it; the backend, analytics and owner roles
each get their share. Checked by connecting as a login that is a member of each role."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import asyncpg
import pytest

from tests.helpers.chain import INDEXER, indexer_env
from tests.helpers.chainstate import mismatches, oracle
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.pg import drop_login, login_url, new_login

ROLES = ("audifi_owner", "audifi_indexer", "audifi_backend", "audifi_analytics")
DENIED = asyncpg.exceptions.InsufficientPrivilegeError

# What the indexer needs: every statement must pass (each runs in a rolled-back savepoint).
INDEXER_MAY = [
    "select count(*) from nft_transfers",
    "insert into indexer_checkpoints (chain_id, block_number, block_hash) "
    "values (999, 1, decode(repeat('00', 32), 'hex'))",
    "delete from indexer_blocks where chain_id = 999",
    "update token_holders set balance = balance where chain_id = 999",
    "insert into indexer_reorgs (chain_id, fork_block, depth) values (999, 1, 1)",
    "update master_ipos set minted_supply = minted_supply where master_id is null",
    "select sync_master_ipo_minted_supply(array[gen_random_uuid()])",
    "select version from schema_migrations",
    "create temp table stage_probe (i int)",
]
# What it must not do: no DDL, no TRUNCATE, no secrets, no billing, no backend columns.
INDEXER_MAY_NOT = [
    "create table probe (i int)",
    "alter table nft_transfers add column probe int",
    "drop table nft_transfers",
    "create index probe_idx on nft_transfers (token_id)",
    "truncate nft_transfers",
    "refresh materialized view master_ipo_stats",
    "select email from users",
    "select two_factor_secret from users",
    "select access_token from accounts",
    "select client_secret from identity_providers",
    "select webhook_secret from payment_providers",
    "select count(*) from payment_methods",
    "select count(*) from invoices",
    "select count(*) from subscriptions",
    "select count(*) from payment_transactions",
    "select count(*) from audit_logs",
    "select count(*) from masters",
    "select count(*) from vstudio_votes",
    "update master_ipos set status = 'live'",
    "delete from master_ipos",
    "insert into audit_logs (action) values ('probe')",
    "set role audifi_owner",
    "alter table nft_transfers owner to current_user",
]
BACKEND_MAY = [
    "insert into users (email) values ('probe@example.com')",
    "select email from users",
    "select count(*) from nft_transfers",
    "select count(*) from artist_performance",
    "update master_ipos set status = status",
]
BACKEND_MAY_NOT = [
    "insert into nft_transfers select * from nft_transfers where false",
    "update master_ipos set minted_supply = 0",
    "delete from indexer_checkpoints",
    "update audit_logs set action = action",
    "create table probe (i int)",
]
ANALYTICS_MAY = [
    "select count(*) from nft_transfers",
    "select count(*) from master_ipo_stats",
    "select id, status, created_at from users",
    "select count(*) from masters",
    "select brand from payment_methods",
]
ANALYTICS_MAY_NOT = [
    "select email from users",
    "select password_hash from users",
    "select refresh_token from accounts",
    "select config_json from payment_providers",
    "select provider_method_id from payment_methods",
    "insert into users (email) values ('probe@example.com')",
    "update token_holders set balance = 0",
    "create table probe (i int)",
]
OWNER_MAY = [
    "alter table nft_transfers add column probe int",
    "create index probe_idx on nft_transfers (token_id)",
    "refresh materialized view master_ipo_stats",
]


@pytest.fixture
async def logins(database_url: str, pg_admin_dsn: str) -> AsyncIterator[dict[str, str]]:
    """A URL per role, logging in as a fresh member of it."""
    made: dict[str, str] = {}
    urls: dict[str, str] = {}
    try:
        for role in ROLES:
            login, password = await new_login(pg_admin_dsn, role)
            made[role] = login
            urls[role] = login_url(database_url, login, password)
        yield urls
    finally:
        for login in made.values():
            await drop_login(pg_admin_dsn, login)


async def _outcomes(url: str, statements: list[str], *, role: str | None = None) -> dict[str, str]:
    """Run each statement in a transaction rolled back after; 'ok' or the error's class.
    With `role`, as migrations run: `set role` first."""
    conn = await asyncpg.connect(url)
    try:
        if role is not None:
            await conn.execute(f"set role {role}")
        found = {}
        for statement in statements:
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.execute(statement)
                found[statement] = "ok"
            except asyncpg.PostgresError as e:
                found[statement] = type(e).__name__
            finally:
                await tx.rollback()
        return found
    finally:
        await conn.close()


async def test_the_indexer_role_can_index_and_nothing_more(logins: dict[str, str]) -> None:
    allowed = await _outcomes(logins["audifi_indexer"], INDEXER_MAY)
    assert allowed == dict.fromkeys(INDEXER_MAY, "ok")
    refused = await _outcomes(logins["audifi_indexer"], INDEXER_MAY_NOT)
    assert refused == dict.fromkeys(INDEXER_MAY_NOT, DENIED.__name__)


@pytest.mark.parametrize(
    ("role", "may", "may_not"),
    [
        ("audifi_backend", BACKEND_MAY, BACKEND_MAY_NOT),
        ("audifi_analytics", ANALYTICS_MAY, ANALYTICS_MAY_NOT),
        ("audifi_owner", OWNER_MAY, []),
    ],
)
async def test_the_other_roles_get_their_share(
    role: str, may: list[str], may_not: list[str], logins: dict[str, str]
) -> None:
    as_role = role if role == "audifi_owner" else None
    assert await _outcomes(logins[role], may, role=as_role) == dict.fromkeys(may, "ok")
    assert await _outcomes(logins[role], may_not) == dict.fromkeys(may_not, DENIED.__name__)


async def test_everything_in_the_schema_belongs_to_the_owner_role(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        others = await conn.fetch(
            "select relname, relowner::regrole::text as owner from pg_class"
            " where relnamespace = 'public'::regnamespace and relkind in ('r', 'p', 'v', 'm', 'S')"
            " and relowner <> 'audifi_owner'::regrole"
            " union all select proname, proowner::regrole::text from pg_proc"
            " where pronamespace = 'public'::regnamespace and proowner <> 'audifi_owner'::regrole"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in others] == []


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=53, events=300) as chain:
        yield chain


async def test_a_backfill_and_status_run_as_the_indexer_role(
    database_url: str, logins: dict[str, str], live: LiveChain
) -> None:
    """The real command, as the indexer's login: everything indexed, and the IPO row the
    backend created before the mints gets its minted_supply from the indexer."""
    master = live.workload.masters[0]
    await _backend_ipo(database_url, uuid.UUID(bytes=master.master_id))
    env = indexer_env(logins["audifi_indexer"], live.chain)
    head = live.head()
    args = ["backfill", "--from-block", str(live.chain.factory_block), "--to-block", str(head)]
    done = await asyncio.to_thread(_run, [*args], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert await mismatches(database_url, oracle(live.chain.url, live.chain.factory)) == []
    conn = await asyncpg.connect(database_url)
    try:
        supply = await conn.fetchval(
            "select minted_supply from master_ipos where master_id = $1",
            uuid.UUID(bytes=master.master_id),
        )
        contracts = await conn.fetchval(
            "select minted_supply from master_contracts where nft_address = $1", master.nft
        )
    finally:
        await conn.close()
    assert supply == contracts > 0
    shown = await asyncio.to_thread(_run, ["status"], env)
    assert shown.returncode == 0, shown.stderr[-2000:]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INDEXER, *args], env=env, capture_output=True, text=True, timeout=120)


async def _backend_ipo(url: str, master_id: uuid.UUID) -> None:
    conn = await asyncpg.connect(url)
    try:
        user = await conn.fetchval(
            "insert into users (email) values ('artist@example.com') returning id"
        )
        artist = await conn.fetchval(
            "insert into artists (user_id, artist_name, slug) values ($1, 'A', 'a') returning id",
            user,
        )
        await conn.execute(
            "insert into masters (id, artist_id, title) values ($1, $2, 'M')", master_id, artist
        )
        await conn.execute(
            "insert into master_ipos (master_id, total_supply, revenue_share_nft_holders_bps)"
            " values ($1, 1000000, 5000)",
            master_id,
        )
        assert await conn.fetchval("select minted_supply from master_ipos") == Decimal(0)
    finally:
        await conn.close()
