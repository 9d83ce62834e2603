"""Bad input: wrong arguments and settings are one clear line and exit 2 with nothing
written; a database or node that is not there at start-up makes the daemon wait and
say for what, and a one-shot command fail with one line and exit 1."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, wait_exit
from tests.helpers.faults import Fault
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.nodes import proxies_on_a_thread
from tests.helpers.ops import json_lines
from tests.helpers.pg import drop_login, limit_connections, login_url, new_login
from tests.helpers.polling import wait_until

USAGE = 2
CLOSED = "127.0.0.1:1"  # nothing listens on port 1


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=71, events=200) as chain:
        yield chain


@pytest.fixture(scope="module")
def empty_schema(pg_databases: pg.Databases, template_db: str) -> Iterator[str]:
    """One migrated database for every bad-input case: none may write to it."""
    name = pg_databases.create(template=template_db)
    yield pg_databases.url(name)
    pg_databases.drop(name)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INDEXER, *args], env=env, capture_output=True, text=True, timeout=60)


async def _rows(url: str) -> dict[str, int]:
    """Rows in every table but schema_migrations: {} for an untouched database."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public'"
            " and tablename <> 'schema_migrations'"
        )
        counts = {}
        for (table,) in tables:
            n = await conn.fetchval(f'select count(*) from "{table}"')
            if n:
                counts[table] = n
        return counts
    finally:
        await conn.close()


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def _arguments(head: int, factory_block: int) -> list[tuple[list[str], str]]:
    """(arguments, what the one line must say)."""
    return [
        (["backfill", "--from-block", "10", "--to-block", "5"], "after --to-block"),
        (["backfill", "--from-block", "-1", "--to-block", "5"], "--from-block"),
        (["backfill", "--from-block", "0", "--to-block", "-5"], "--to-block"),
        (["backfill", "--from-block", "ten", "--to-block", "5"], "--from-block"),
        (["backfill", "--to-block", "5"], "--from-block"),
        (["backfill", "--from-block", "0", "--to-block", "5", "--fast"], "--fast"),
        (
            ["backfill", "--from-block", str(factory_block), "--to-block", str(head + 10)],
            f"beyond the node's head {head}",
        ),
        (
            ["verify", "--from-block", str(factory_block), "--to-block", str(head + 10)],
            f"beyond the node's head {head}",
        ),
        (
            ["audit", "--from-block", str(factory_block), "--to-block", str(head + 10)],
            f"beyond the node's head {head}",
        ),
        (["audit", "--from-block", "10", "--to-block", "5"], "after --to-block"),
        (["verify", "--from-block", "0", "--to-block", "5", "--against", "ftp://x"], "--against"),
        (["rewind", "--to-block", "-1"], "--to-block"),
        (["rewind", "--to-block", "3"], "nothing to rewind"),
        (["migrate", "down", "--to", "-2"], "--to"),
        (["migrate", "up", "--to", "99"], "--to 99: no such migration (versions: 0 for none, 1 to"),
        (["no-such-command"], "no-such-command"),
    ]


def test_bad_arguments_are_one_line_exit_2_and_write_nothing(
    empty_schema: str, live: LiveChain
) -> None:
    env = indexer_env(empty_schema, live.chain)
    for args, says in _arguments(live.head(), live.chain.factory_block):
        result = _cli(args, env)
        assert result.returncode == USAGE, (args, result.stderr)
        assert says in _one_line(result), (args, result.stderr)
        assert _run(_rows(empty_schema)) == {}, f"{args} wrote to the database"


BACKFILL = ["backfill", "--from-block", "1", "--to-block", "2"]
BAD_SETTINGS = [
    ("AUDIFI_FACTORY_ADDRESS", "0x1234"),
    ("AUDIFI_FACTORY_ADDRESS", "0x" + "g" * 40),
    ("AUDIFI_FACTORY_ADDRESS", "11" * 20),
    ("AUDIFI_FACTORY_ADDRESS", "0x" + "11" * 21),
    ("AUDIFI_CONFIRMATIONS", "-1"),
    ("AUDIFI_REORG_WINDOW", "0"),
    ("AUDIFI_START_BLOCK", "first"),
    ("AUDIFI_RPC_URLS", "http://127.0.0.1:8545,ws://127.0.0.1:8546"),
    ("AUDIFI_RPC_TIMEOUT", "0"),
    ("AUDIFI_DB_STATEMENT_TIMEOUT_MS", "soon"),
    ("AUDIFI_METRICS_PORT", "70000"),
]


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        (
            variable,
            value,
            ["run"] if i % 2 else ["backfill", "--from-block", "1", "--to-block", "2"],
        )
        for i, (variable, value) in enumerate(BAD_SETTINGS)
    ],
)
def test_a_bad_setting_is_one_line_exit_2_and_writes_nothing(
    variable: str, value: str, command: list[str], empty_schema: str, live: LiveChain
) -> None:
    env = {**indexer_env(empty_schema, live.chain), variable: value}
    result = _cli(command, env)
    assert result.returncode == USAGE, result.stderr
    assert variable in _one_line(result)
    assert _run(_rows(empty_schema)) == {}


# --- dependencies missing at start-up ----------------------------------------------------


def test_the_daemon_waits_for_its_database_and_says_so(
    database_url: str, pg_admin_dsn: str, live: LiveChain, tmp_path: Path
) -> None:
    """Its login is locked out (connection limit 0): the daemon logs what it waits for,
    with backoff, the password redacted, and starts as soon as it is let in."""
    login, password = _run(new_login(pg_admin_dsn, "audifi_indexer"))
    log = tmp_path / "daemon.log"
    try:
        _run(limit_connections(pg_admin_dsn, login, 0))
        env = indexer_env(login_url(database_url, login, password), live.chain)
        with running_indexer(["run"], env, log_path=str(log)) as daemon:
            waits = _until_events(log, daemon, "waiting_for_dependencies", 3)
            _run(limit_connections(pg_admin_dsn, login, -1))
            _until_events(log, daemon, "started", 1)
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 15) == 0
    finally:
        _run(drop_login(pg_admin_dsn, login))
    for record in waits:
        assert "connecting to PostgreSQL" in record["error"], record
        assert record["database"].startswith(f"postgresql://{login}:***@"), record
    assert password not in log.read_text()
    _assert_backoff(waits)


def test_the_daemon_waits_for_its_node_and_says_so(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    with proxies_on_a_thread(live.chain.url) as (thread, [proxy]):
        thread.call(lambda: proxy.randomize(1.0, [Fault.HTTP_503]))
        node = proxy.url.replace("127.0.0.1", "user:rpc-secret@127.0.0.1")
        env = indexer_env(database_url, live.chain, AUDIFI_RPC_URL=node, AUDIFI_RPC_MAX_RETRIES="0")
        with running_indexer(["run"], env, log_path=str(log)) as daemon:
            waits = _until_events(log, daemon, "waiting_for_dependencies", 3)
            thread.call(lambda: proxy.randomize(0))
            _until_events(log, daemon, "started", 1)
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 15) == 0
    for record in waits:
        assert "HTTP 503" in record["error"], record
        assert record["rpc"] == [node.replace(":rpc-secret@", ":***@")], record
    assert "rpc-secret" not in log.read_text()
    _assert_backoff(waits)


@pytest.mark.parametrize(
    ("args", "broken"),
    [
        (["backfill", "--from-block", "1", "--to-block", "2"], "database"),
        (["migrate", "up"], "database"),
        (["status"], "database"),
        (["backfill", "--from-block", "1", "--to-block", "2"], "node"),
        (["rewind", "--to-block", "1"], "node"),
    ],
)
def test_a_one_shot_command_without_its_dependency_fails_in_one_line(
    args: list[str], broken: str, empty_schema: str, live: LiveChain
) -> None:
    env = indexer_env(empty_schema, live.chain, AUDIFI_RPC_MAX_RETRIES="0")
    if broken == "database":
        env["AUDIFI_DATABASE_URL"] = f"postgresql://indexer:pw-secret@{CLOSED}/audifi"
    else:
        env["AUDIFI_RPC_URL"] = f"http://{CLOSED}/"
    result = _cli(args, env)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr
    assert ("PostgreSQL" if broken == "database" else "node") in line, line
    assert "pw-secret" not in result.stderr + result.stdout
    json_lines("\n".join(result.stderr.strip().splitlines()[:-1]))  # the rest: log lines only
    assert _run(_rows(empty_schema)) == {}


def _until_events(
    log: Path, daemon: subprocess.Popen[bytes], event: str, n: int
) -> list[dict[str, object]]:
    def found() -> list[dict[str, object]]:
        records = [r for r in json_lines(log.read_text()) if r["event"] == event]
        return records if len(records) >= n else []

    records = wait_until(
        lambda: daemon.poll() is not None or found(), timeout=60, what=f"{n} {event} lines"
    )
    assert daemon.poll() is None, log.read_text()[-3000:]
    assert isinstance(records, list)
    return records


def _assert_backoff(waits: list[dict[str, object]]) -> None:
    """The waits between attempts grow (exponential backoff, jittered within [d/2, d],
    so the next one is never shorter than the last): no hammering."""
    times = [datetime.fromisoformat(str(r["timestamp"])) for r in waits]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps and gaps[0] > 0.05, gaps
    assert all(b >= a * 0.9 for a, b in itertools.pairwise(gaps)), gaps
