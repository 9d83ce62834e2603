"""PostgreSQL failing under the indexer, on real servers: its connection killed in the
middle of a batch, its login locked out, a statement timeout, the server restarted (a
private cluster: the shared one stays up), and a unique violation that must not
happen. The indexer retries what can heal and stops loudly on what cannot; readiness
goes down and comes back; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from indexer.devchain.anvil import free_port
from indexer.devchain.contracts import Master
from indexer.errors import DatabaseUnavailable, Fatal
from indexer.store.db import database_errors
from tests.helpers import pg
from tests.helpers.chain import indexer_env, running_indexer, wait_exit
from tests.helpers.chainstate import duplicates, mismatches, oracle, reference, snapshot, written
from tests.helpers.livechain import Activity, LiveChain, sparse_chain
from tests.helpers.ops import get, json_lines, private_postgres
from tests.helpers.pg import drop_login, limit_connections, login_url, new_login
from tests.helpers.polling import eventually, wait_until

APP = "audifi-indexer"  # the pool's application_name


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=61, events=1_500) as chain:
        yield chain


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _env(url: str, live: LiveChain, port: int, **extra: str) -> dict[str, str]:
    return indexer_env(
        url,
        live.chain,
        AUDIFI_METRICS_PORT=str(port),
        AUDIFI_POLL_INTERVAL="0.1",
        AUDIFI_START_BLOCK=str(live.chain.factory_block),
        **extra,
    )


def _readyz(port: int) -> tuple[int, str] | None:
    return get(f"http://127.0.0.1:{port}/readyz", timeout=3)


def _until_ready(port: int, daemon: subprocess.Popen[bytes], log: Path, *, ready: bool) -> str:
    """Wait for /readyz to answer 200 (ready) or 503; returns its body."""
    want = 200 if ready else 503
    answer = wait_until(
        lambda: (
            daemon.poll() is not None or ((a := _readyz(port)) is not None and a[0] == want and a)
        ),
        timeout=60,
        what=f"/readyz {want}",
    )
    assert daemon.poll() is None, log.read_text()[-3000:]
    assert isinstance(answer, tuple)
    return answer[1]


def _until_indexed(url: str, live: LiveChain, daemon: subprocess.Popen[bytes], log: Path) -> None:
    head = live.head()
    wait_until(
        lambda: daemon.poll() is not None or _run(written(url))[0] == head,
        timeout=60,
        what=f"the checkpoint at block {head}",
    )
    assert daemon.poll() is None, log.read_text()[-3000:]


def _nothing_lost_nor_doubled(url: str, live: LiveChain) -> None:
    assert _run(mismatches(url, oracle(live.chain.url, live.chain.factory))) == []
    assert _run(duplicates(url)) == {}


async def _terminate(admin: str, where: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(admin)
    try:
        return await conn.fetch(
            "select pg_terminate_backend(pid), xact_start is not null as in_transaction"
            f" from pg_stat_activity where {where}",
            *args,
        )
    finally:
        await conn.close()


def test_connections_killed_mid_batch_during_a_backfill(
    database_url: str,
    pg_admin_dsn: str,
    live: LiveChain,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    """pg_terminate_backend on the backfill's sessions while they are inside a batch's
    transaction: each batch rolls back whole and is written again; the command ends 0."""
    head = live.head()
    name = pg_databases.create(template=template_db)
    try:
        clean = pg_databases.run(reference(pg_databases.url(name), live.chain, head))
    finally:
        pg_databases.drop(name)
    database = database_url.rsplit("/", 1)[1]
    env = indexer_env(database_url, live.chain, AUDIFI_BATCH_MAX_LOGS="30")
    args = ["backfill", "--from-block", str(live.chain.factory_block), "--to-block", str(head)]
    log = tmp_path / "backfill.log"
    with running_indexer(args, env, log_path=str(log)) as process:
        mid_batch = _run(_kill_in_transactions(pg_admin_dsn, database, process, wanted=3))
        code = wait_exit(process, 120, log=log)
    assert code == 0, log.read_text()[-8000:]
    assert mid_batch >= 3, f"only {mid_batch} kills landed inside a transaction"
    retries = [r for r in json_lines(log.read_text()) if r["event"] == "backfill_retry"]
    assert len(retries) >= mid_batch, retries
    assert _run(snapshot(database_url)) == clean
    _nothing_lost_nor_doubled(database_url, live)


async def _kill_in_transactions(
    admin: str, database: str, process: subprocess.Popen[bytes], *, wanted: int
) -> int:
    """Kill the command's sessions that are inside a transaction, `wanted` times, a
    moment apart, while it runs; returns how many kills landed inside one."""
    landed = 0
    conn = await asyncpg.connect(admin)
    try:
        url = pg.database_url(admin, database)

        async def writing() -> bool:
            return process.poll() is not None or (await written(url))[1] > 0

        # Batches, not start-up: a one-shot command gives up on a database lost there.
        await eventually(writing, within=60, what="the backfill's first rows", every=0.01)
        deadline = asyncio.get_running_loop().time() + 60
        while process.poll() is None and landed < wanted:
            assert asyncio.get_running_loop().time() < deadline, f"{landed} kills in 60 s"
            rows = await conn.fetch(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where datname = $1 and application_name = $2 and xact_start is not null"
                " and state <> 'idle'",
                database,
                APP,
            )
            if any(r[0] for r in rows):
                landed += 1
                await asyncio.sleep(0.05)  # let it retry before the next
            else:
                await asyncio.sleep(0.005)
    finally:
        await conn.close()
    return landed


def test_the_daemon_rides_out_killed_connections_and_a_lockout(
    database_url: str, pg_admin_dsn: str, live: LiveChain, tmp_path: Path
) -> None:
    """As the indexer role's login: its sessions killed mid-batch, then the login locked
    out (connection limit 0): /readyz turns 503, the daemon backs off and says why; once
    let back in, it reconnects, /readyz is 200 again and the data is the chain's."""
    login, password = _run(new_login(pg_admin_dsn, "audifi_indexer"))
    port = free_port()
    log = tmp_path / "daemon.log"
    database = database_url.rsplit("/", 1)[1]
    mine = "usename = $1 and datname = $2"
    try:
        env = _env(login_url(database_url, login, password), live, port)
        with running_indexer(["run"], env, log_path=str(log)) as daemon:
            _until_ready(port, daemon, log, ready=True)
            with Activity(live, every=0.1, events=20):
                killed = 0
                deadline = time.monotonic() + 20
                while killed < 3 and time.monotonic() < deadline:
                    rows = _run(
                        _terminate(
                            pg_admin_dsn, f"{mine} and xact_start is not null", login, database
                        )
                    )
                    killed += sum(1 for r in rows if r[0])
                _run(limit_connections(pg_admin_dsn, login, 0))
                _run(_terminate(pg_admin_dsn, mine, login, database))
                why = _until_ready(port, daemon, log, ready=False)
                _run(limit_connections(pg_admin_dsn, login, -1))
                _until_ready(port, daemon, log, ready=True)
            _until_indexed(database_url, live, daemon, log)
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 15) == 0
    finally:
        _run(drop_login(pg_admin_dsn, login))
    assert killed >= 3, "the kills should land inside the daemon's transactions"
    assert why.startswith(("database", "the last step failed")), why
    retried = [r for r in json_lines(log.read_text()) if r["event"] == "step_retry"]
    assert any(r["error_type"] == "DatabaseUnavailable" for r in retried), retried[-5:]
    _nothing_lost_nor_doubled(database_url, live)


def test_a_statement_timeout_is_retried_not_fatal(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    """A test session locks the checkpoint table while blocks arrive: the daemon's commit
    hits AUDIFI_DB_STATEMENT_TIMEOUT_MS, rolls back, is not ready, and retries until the
    lock goes; then it is ready and at the head."""
    port = free_port()
    log = tmp_path / "daemon.log"
    env = _env(database_url, live, port, AUDIFI_DB_STATEMENT_TIMEOUT_MS="300")
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        _until_ready(port, daemon, log, ready=True)
        with _locked(database_url, "indexer_checkpoints"):
            with Activity(live, every=0.05, events=20) as activity:
                wait_until(lambda: activity.rounds >= 2, timeout=30, what="new blocks")
            _until_ready(port, daemon, log, ready=False)
            wait_until(
                lambda: "statement timeout" in log.read_text(),
                timeout=30,
                what="a statement timeout in the log",
            )
        _until_ready(port, daemon, log, ready=True)
        _until_indexed(database_url, live, daemon, log)
        daemon.send_signal(signal.SIGTERM)
        assert wait_exit(daemon, 15) == 0
    _nothing_lost_nor_doubled(database_url, live)


class _locked:
    """Hold `lock table <table> in exclusive mode` (reads pass, writes wait) on a thread."""

    def __init__(self, url: str, table: str) -> None:
        self.url, self.table = url, table
        self._release = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._held: asyncio.Future[None] | None = None

    def __enter__(self) -> None:
        import threading

        locked = threading.Event()

        async def hold() -> None:
            conn = await asyncpg.connect(self.url)
            try:
                async with conn.transaction():
                    await conn.execute(f"lock table {self.table} in exclusive mode")
                    locked.set()
                    await self._release.wait()
            finally:
                await conn.close()

        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(hold(),), daemon=True
        )
        self._thread.start()
        assert locked.wait(10), "could not take the lock"

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        self._thread.join(10)
        self._loop.close()


def test_a_restarted_server_is_reconnected_and_nothing_is_lost(
    live: LiveChain, tmp_path: Path
) -> None:
    """A private cluster, stopped (fast shutdown, by PID) and started again under the
    running daemon while blocks keep coming."""
    port = free_port()
    log = tmp_path / "daemon.log"
    with private_postgres() as server:
        server.migrate()
        url = server.url()
        with running_indexer(["run"], _env(url, live, port), log_path=str(log)) as daemon:
            _until_ready(port, daemon, log, ready=True)
            with Activity(live, every=0.1, events=20) as activity:
                wait_until(lambda: activity.rounds >= 3, timeout=30, what="blocks")
                server.stop()
                _until_ready(port, daemon, log, ready=False)
                rounds = activity.rounds
                wait_until(lambda: activity.rounds >= rounds + 3, timeout=30, what="blocks")
                server.start()
                _until_ready(port, daemon, log, ready=True)
            _until_indexed(url, live, daemon, log)
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 15) == 0
        _nothing_lost_nor_doubled(url, live)
    retried = [r for r in json_lines(log.read_text()) if r["event"] == "step_retry"]
    assert any(r["error_type"] == "DatabaseUnavailable" for r in retried), retried[-5:]


def test_a_unique_violation_that_should_not_happen_stops_the_daemon_loudly(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    """A row the indexer does not expect (another log claiming a master's NFT address)
    makes its insert violate a unique key: the daemon does not retry it or swallow it;
    it exits non-zero with one line naming the constraint, and the batch is not written."""
    master = live.workload.masters[0]
    _run(_plant_conflicting_master(database_url, live, master))
    log = tmp_path / "daemon.log"
    env = _env(database_url, live, free_port())
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        code = wait_exit(daemon, 60, log=log)
    text = log.read_text()
    assert code == 1, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: ") and "unexpected duplicate" in last, last
    assert "master_contracts_chain_id_nft_address_key" in last, last
    checkpoint, _ = _run(written(database_url))
    assert checkpoint is None or checkpoint < master.block, "the failed batch was not written"


async def _plant_conflicting_master(url: str, live: LiveChain, master: Master) -> None:
    """A row in the master's own block (so no reorg check discards it) under another log."""
    header = live.rpc.call("eth_getBlockByNumber", [hex(master.block), False])
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into master_contracts (chain_id, block_number, block_hash, block_timestamp,"
            " tx_hash, log_index, master_id, nft_address, distributor_address, total_supply)"
            " values ($1, $2, $3, now(), $4, 9999, $5, $6, $7, 1)",
            int(live.rpc.call("eth_chainId"), 16),
            master.block,
            bytes.fromhex(header["hash"][2:]),
            uuid.uuid4().bytes * 2,
            uuid.uuid4(),
            master.nft,
            bytes(range(20)),
        )
    finally:
        await conn.close()


async def test_database_errors_are_mapped_retryable_or_fatal(database_url: str) -> None:
    """The mapping in store/db.py: connection trouble and cancelled statements retry;
    a unique violation and other SQL errors are fatal and keep the server's message.
    (A fresh connection per case: asyncpg's state after a cancel is not the point.)"""
    cases: list[tuple[str, type[Exception], str]] = [
        ("set statement_timeout = 50; select pg_sleep(1)", DatabaseUnavailable, "QueryCanceled"),
        (
            "insert into indexer_checkpoints values (1, 1, $1), (1, 2, $1)",
            Fatal,
            "unexpected duplicate.*indexer_checkpoints_pkey",
        ),
        ("select * from no_such_table", Fatal, "UndefinedTableError"),
        ("select pg_terminate_backend(pg_backend_pid())", DatabaseUnavailable, "Connection"),
    ]
    for statement, expected, says in cases:
        conn = await asyncpg.connect(database_url)
        try:
            with pytest.raises(expected, match=says):
                async with database_errors("doing"):
                    args = [bytes(32)] if "$1" in statement else []
                    await conn.execute(statement, *args)
        finally:
            await conn.close()


async def test_a_connection_left_mid_protocol_is_retryable() -> None:
    """What asyncpg raises on a connection a kill or a cancel left mid-protocol
    ("cannot switch to state ...; another operation is in progress") is a transient
    fault, not a crash."""
    with pytest.raises(DatabaseUnavailable):
        async with database_errors("reading"):
            raise asyncpg.exceptions.InternalClientError("cannot switch to state 12")
