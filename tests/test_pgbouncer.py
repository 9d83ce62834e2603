"""The indexer through a real PgBouncer in transaction mode (tests/helpers/pgbouncer.py):
two server connections shared by every client, so consecutive transactions of one client
run on different server sessions. Statements, staging tables and locks stay right there;
migrations, a backfill and the live follower (through activity and reorgs) end equal to
the chain; a wrong AUDIFI_DB_POOL_MODE stops at start-up with one line naming it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from indexer.devchain.workload import WorkloadConfig
from indexer.migrate import load_migrations
from indexer.store.control import acquire_lease, check_fence
from indexer.store.db import connection, create_pool, session_settings
from indexer.store.notify import CHANNEL
from indexer.store.write import lock_chain
from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, wait_exit
from tests.helpers.chainstate import checkpoint, ends_equal_to_the_chain_and_a_fresh_index
from tests.helpers.events import checked
from tests.helpers.livechain import Activity, LiveChain, live_chain
from tests.helpers.pgbouncer import POOL_SIZE, PgBouncer, running_pgbouncer, set_role_defaults
from tests.helpers.polling import eventually, wait_until

ALL_VERSIONS = [m.version for m in load_migrations()]
# What a connection whose server session was terminated raises (as store/db.py maps it).
ENDED = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
# What the session-mode pool sends in its startup packet besides application_name.
SESSION_PARAMETERS = tuple(session_settings(60_000))
LISTENER = "audifi-test-listener"  # the application_name of the test's direct LISTEN


@pytest.fixture
def bouncer(pg_admin_dsn: str, tmp_path: Path) -> Iterator[PgBouncer]:
    with running_pgbouncer(pg_admin_dsn, tmp_path / "pgbouncer") as running:
        yield running


def _env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a command that is refused, or done, before it asks a node (so
    the node named here is none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIFI_")}
    return {
        **env,
        "AUDIFI_DATABASE_URL": url,
        "AUDIFI_RPC_URL": "http://127.0.0.1:9",
        "AUDIFI_FACTORY_ADDRESS": "0x" + "11" * 20,
        "AUDIFI_METRICS_PORT": "0",
        "AUDIFI_LOG_FORMAT": "json",
        **extra,
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INDEXER, *args], env=env, capture_output=True, text=True, timeout=60)


def _refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command refused as misconfigured (exit 2)."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    return errors[0]


# --- the driver on shared server connections -------------------------------------------


async def _client(pool: asyncpg.Pool, client: int, rounds: int) -> set[int]:
    """One client connection's statements and transactions, each checked; the server
    sessions (backend pids) they ran on."""
    pids: set[int] = set()
    async with connection(pool) as conn:
        for n in range(rounds):
            row = await conn.fetchrow(
                "select pg_backend_pid() as pid, $1::bigint * 2 as twice, $2::text as text, "
                "current_setting('lock_timeout') as lock_timeout",
                client * 1000 + n,
                f"{client}:{n}",
            )
            assert row is not None
            assert (row["twice"], row["text"]) == ((client * 1000 + n) * 2, f"{client}:{n}")
            assert row["lock_timeout"] == "1min"  # the role's default, on every server session
            pids.add(row["pid"])
            pids.add(await _staged_transaction(conn, client, rows=n % 5 + 1))
    return pids


async def _staged_transaction(conn: asyncpg.Connection, client: int, *, rows: int) -> int:
    """The write path's shape: a transaction lock, `set local`, a temp staging table made
    if this server session has none, COPY into it; it must hold exactly this transaction's
    rows (on commit delete rows: never another client's)."""
    async with conn.transaction():
        await conn.execute("set local synchronous_commit = off")
        await conn.execute("select pg_advisory_xact_lock(4242, $1)", client)
        await conn.execute(
            "create temp table if not exists stage_probe (client int, n int) on commit delete rows"
        )
        await conn.copy_records_to_table(
            "stage_probe", records=[(client, i) for i in range(rows)], columns=["client", "n"]
        )
        seen = await conn.fetchrow(
            "select count(*) as n, bool_and(client = $1) as mine, "
            "current_setting('synchronous_commit') as sync, pg_backend_pid() as pid "
            "from stage_probe",
            client,
        )
    assert seen is not None
    assert (seen["n"], seen["mine"], seen["sync"]) == (rows, True, "off")
    return int(seen["pid"])


async def _transaction_pool(bouncer: PgBouncer, database_url: str, size: int) -> asyncpg.Pool:
    """The indexer's own pool, in transaction mode, through `bouncer`."""
    await set_role_defaults(database_url)
    return await create_pool(
        bouncer.url(database_url),
        min_size=size,
        max_size=size,
        statement_timeout_ms=60_000,
        pool_mode="transaction",
    )


async def test_statements_and_staging_tables_are_right_on_rotating_server_connections(
    bouncer: PgBouncer, database_url: str
) -> None:
    pool = await _transaction_pool(bouncer, database_url, 8)
    try:
        seen = await asyncio.gather(*(_client(pool, client, rounds=25) for client in range(8)))
    finally:
        await pool.close()
    # Eight clients, two server sessions: each client's transactions moved between them.
    assert len(set().union(*seen)) == POOL_SIZE
    assert all(len(pids) == POOL_SIZE for pids in seen), seen


async def test_a_new_leader_ends_the_old_leaders_open_transaction_through_pgbouncer(
    bouncer: PgBouncer, database_url: str
) -> None:
    """The old leader's write transaction, paused with the writer lock, is tagged with its
    epoch on the server connection it runs on: the takeover ends exactly that one."""
    chain_id = 1
    pool = await _transaction_pool(bouncer, database_url, 2)
    try:
        old = await acquire_lease(pool, chain_id, "old", 1.0)
        assert old is not None
        paused = await asyncpg.connect(bouncer.url(database_url), statement_cache_size=0)
        try:
            await paused.execute("begin")
            await check_fence(paused, chain_id, old)  # how a leader's batch starts
            await lock_chain(paused, chain_id, durable=True)
            new = await eventually(
                lambda: acquire_lease(pool, chain_id, "new", 30.0),
                within=10,
                what="the new leader to take the lease over",
            )
            assert new.epoch == old.epoch + 1
            with pytest.raises(ENDED):
                await paused.execute("commit")
        finally:
            paused.terminate()
        async with connection(pool) as conn, conn.transaction():  # the writer lock is free
            await asyncio.wait_for(lock_chain(conn, chain_id, durable=True), timeout=10)
            await check_fence(conn, chain_id, new)
    finally:
        await pool.close()


# --- migrations ------------------------------------------------------------------------


def _applied(done: subprocess.CompletedProcess[str]) -> list[int]:
    """The versions `migrate up` says it applied."""
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("applied: ")]
    listed = line.removeprefix("applied: ")
    return [] if listed == "nothing to do" else [int(v) for v in re.findall(r"\d+", listed)]


def test_concurrent_migrate_up_through_pgbouncer_applies_each_migration_once(
    bouncer: PgBouncer, empty_database_url: str, pg_databases: pg.Databases
) -> None:
    pg_databases.run(set_role_defaults(empty_database_url))
    env = _env(bouncer.url(empty_database_url), AUDIFI_DB_POOL_MODE="transaction")
    runners = [
        subprocess.Popen(
            [*INDEXER, "migrate", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [runner.communicate(timeout=120) for runner in runners]
    finally:
        for runner in runners:  # stopped by PID whatever happened
            if runner.poll() is None:
                runner.kill()
                runner.wait(5)
    applied = [
        _applied(subprocess.CompletedProcess(r.args, r.returncode, out, err))
        for r, (out, err) in zip(runners, outputs, strict=True)
    ]
    assert sorted(applied[0] + applied[1]) == ALL_VERSIONS, applied
    assert all(versions == sorted(versions) for versions in applied), applied
    assert _applied(_cli(env, "migrate", "up")) == []  # a later runner finds nothing to do
    recorded = pg_databases.run(_versions(empty_database_url))
    assert recorded == ALL_VERSIONS


async def _versions(url: str) -> list[int]:
    conn = await pg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("select version from schema_migrations order by 1")]
    finally:
        await conn.close()


# --- a backfill and the follower -------------------------------------------------------


@pytest.fixture
def live() -> Iterator[LiveChain]:
    with live_chain(
        WorkloadConfig(seed=61, masters=3, artists=3, synthetic_holders=10), 800
    ) as chain:
        yield chain


async def _other_sessions(database_url: str) -> int:
    """Sessions on the database besides this one and the listener: the server connections
    PgBouncer opened for the indexer, which connects only through it."""
    conn = await pg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid() and application_name <> $1",
                LISTENER,
            )
        )
    finally:
        await conn.close()


@contextmanager
def notices(databases: pg.Databases, database_url: str) -> Iterator[list[str]]:
    """The NOTIFY payloads received while in the block, by a LISTEN connected directly to
    PostgreSQL (through PgBouncer it would not hear them)."""
    received: list[str] = []
    listener = databases.run(
        asyncpg.connect(database_url, server_settings={"application_name": LISTENER})
    )
    try:
        databases.run(listener.add_listener(CHANNEL, lambda *args: received.append(str(args[3]))))
        yield received
    finally:
        databases.run(listener.close())


async def _change_seqs(database_url: str) -> list[int]:
    conn = await pg.connect(database_url)
    try:
        return [r[0] for r in await conn.fetch("select seq from indexer_changes order by seq")]
    finally:
        await conn.close()


def test_a_backfill_and_the_follower_through_pgbouncer_end_equal_to_the_chain(
    bouncer: PgBouncer,
    database_url: str,
    live: LiveChain,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    pg_databases.run(set_role_defaults(database_url))
    env = indexer_env(
        bouncer.url(database_url),
        live.chain,
        AUDIFI_DB_POOL_MODE="transaction",
        AUDIFI_POLL_INTERVAL="0.05",
        AUDIFI_LEASE_SECONDS="3",
    )
    head = live.head()
    daemon_log, backfill_log = tmp_path / "run.log", tmp_path / "backfill.log"

    def indexed(block: int) -> None:
        """Before a reorg: the follower has indexed the blocks it will orphan, so it must
        notice the reorg."""
        wait_until(
            lambda: (at := pg_databases.run(checkpoint(database_url))) and at[0] >= block,
            timeout=30,
            what=lambda: f"block {block} indexed:\n{daemon_log.read_text()[-3000:]}",
        )

    backfill_args = ["backfill", "--from-block", str(live.chain.factory_block)]
    with (
        notices(pg_databases, database_url) as received,
        running_indexer(["run"], env, log_path=str(daemon_log)) as daemon,
    ):
        with (
            running_indexer(
                [*backfill_args, "--to-block", str(head)], env, log_path=str(backfill_log)
            ) as backfill,
            Activity(
                live, every=0.3, events=40, reorg_every=3, seed=62, before_reorg=indexed
            ) as activity,
        ):
            wait_until(
                lambda: activity.rounds >= 9 and len(activity.reorgs) >= 2,
                timeout=60,
                what="nine rounds of activity with two reorgs",
            )
            assert wait_exit(backfill, 120, log=backfill_log) == 0
        ends_equal_to_the_chain_and_a_fresh_index(database_url, live, pg_databases, template_db)
        # Two indexer processes of up to ten connections each, on PgBouncer's two sessions.
        assert 1 <= pg_databases.run(_other_sessions(database_url)) <= POOL_SIZE
        assert daemon.poll() is None, daemon_log.read_text()[-3000:]
        # Every change committed through PgBouncer was announced (its summary, at least).
        changes = pg_databases.run(_change_seqs(database_url))
        wait_until(
            lambda: sorted({checked(raw)["seq"] for raw in list(received)}) == changes,
            timeout=10,
            what=f"a notice of each of the changes {changes[:3]}..{changes[-3:]}",
        )
    assert daemon.returncode == 0, daemon_log.read_text()[-3000:]
    assert '"reorg"' in daemon_log.read_text()
    assert '"fatal"' not in daemon_log.read_text()


# --- a wrong AUDIFI_DB_POOL_MODE --------------------------------------------------------


def test_session_mode_through_pgbouncer_is_refused_naming_the_setting(
    bouncer: PgBouncer, database_url: str
) -> None:
    """PgBouncer refuses the session's startup parameters: the daemon stops at once (not
    waiting for a database it takes for unreachable), naming the setting to change."""
    line = _refusal(_cli(_env(bouncer.url(database_url)), "run"))
    assert "AUDIFI_DB_POOL_MODE is session" in line
    assert "refuses the startup parameter statement_timeout" in line
    assert "AUDIFI_DB_POOL_MODE=transaction" in line


def test_session_mode_through_a_pgbouncer_ignoring_the_parameters_is_refused(
    pg_admin_dsn: str, database_url: str, tmp_path: Path
) -> None:
    """Told to ignore them, PgBouncer connects, and the settings silently do not apply:
    read back, the difference is the refusal."""
    with running_pgbouncer(
        pg_admin_dsn, tmp_path / "ignoring", ignore_startup_parameters=SESSION_PARAMETERS
    ) as ignoring:
        line = _refusal(_cli(_env(ignoring.url(database_url)), "run"))
    assert "AUDIFI_DB_POOL_MODE is session" in line
    assert "statement_timeout is 0, not 60000" in line
    assert "AUDIFI_DB_POOL_MODE=transaction" in line


def test_transaction_mode_without_the_role_defaults_is_refused_with_the_fix(
    bouncer: PgBouncer, database_url: str, pg_databases: pg.Databases
) -> None:
    """The timeouts cannot travel in the startup packet: the role's defaults must give
    them. Refused with the statements that set them; once run, the command works."""
    env = _env(bouncer.url(database_url), AUDIFI_DB_POOL_MODE="transaction")
    line = _refusal(_cli(env, "migrate", "up"))
    assert "AUDIFI_DB_POOL_MODE is transaction" in line
    fixes = re.search(r"run: (.*) \(new server connections", line)
    assert fixes is not None, line
    statements = fixes[1].split("; ")
    assert len(statements) == 3 and all(s.startswith("alter role ") for s in statements)
    pg_databases.run(_execute(database_url, statements))
    pg_databases.run(bouncer.console("RECONNECT"))  # server sessions start with the defaults
    assert _applied(_cli(env, "migrate", "up")) == []


async def _execute(url: str, statements: list[str]) -> None:
    conn = await pg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
