"""The read replica (AUDIFI_DATABASE_REPLICA_URL) on a real streaming standby of a real
primary: `status` reads it and shows its lag; `verify` reads it only once it has replayed
what the primary held when verify started, else reads the primary and says so; a server
that is not a standby of the primary's database is refused; and the daemon exports the
replica's lag as metrics (unknown while it cannot be measured)."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog.testing
from prometheus_client import REGISTRY

from indexer.config import load_settings
from indexer.dbreplica import open_replica, sample_replica_lag
from indexer.devchain.anvil import DEFAULT_CHAIN_ID, free_port
from indexer.service import open_pipeline
from indexer.store.state import Store
from indexer.verify import index_to_read, verify
from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, settings_for, wait_exit
from tests.helpers.chainstate import checkpoint
from tests.helpers.livechain import LiveChain, small_chain
from tests.helpers.ops import SECRET, json_lines, scrape
from tests.helpers.polling import eventually, wait_until
from tests.helpers.reorgs import follow_to_head
from tests.helpers.replica import Pair, pause_replay, resume_replay, streaming_replica

LAG = "audifi_indexer_db_replica_lag_"
SAMPLED = "audifi_indexer_db_replica_last_sample_timestamp_seconds"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with small_chain(seed=71, events=600) as chain:
        yield chain


@pytest.fixture(scope="module")
def servers(live: LiveChain) -> Iterator[Pair]:
    """A primary holding the chain's index, and its streaming standby."""
    with streaming_replica() as pair:
        asyncio.run(follow_to_head(pair.primary.url(), live.chain))
        yield pair


@pytest.fixture
def pair(servers: Pair) -> Iterator[Pair]:
    """The servers, with replay running again after the test, whatever it paused."""
    yield servers
    asyncio.run(resume_replay(servers.standby.url()))


def _cli(pair: Pair, live: LiveChain, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INDEXER, *args],
        env=indexer_env(pair.primary.url(), live.chain, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _status(pair: Pair, live: LiveChain, replica: str) -> dict[str, Any]:
    result = _cli(pair, live, "status", "--json", AUDIFI_DATABASE_REPLICA_URL=replica)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def _indexed(pair: Pair) -> int:
    stored = asyncio.run(checkpoint(pair.primary.url()))
    assert stored is not None
    return stored[0]


def _events(stderr: str, name: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(stderr) if line.get("event") == name]


def test_status_through_the_replica_agrees_with_the_primary_once_caught_up(
    pair: Pair, live: LiveChain
) -> None:
    head = _indexed(pair)
    standby = pair.standby.url()
    # Caught up means "replayed all the primary's WAL": poll, since the primary's own
    # background writes (autovacuum, snapshots) may leave it a moment behind.
    through_replica = wait_until(
        lambda: (r := _status(pair, live, standby))["replica"]["caught_up"] and r,
        timeout=30,
        what="status to find the replica caught up",
    )
    through_primary = _status(pair, live, "")  # empty: unset

    assert through_primary.pop("replica") is None
    assert through_replica.pop("replica") == {
        "caught_up": True,
        "lag_blocks": 0,
        "lag_bytes": 0,
        "lag_seconds": 0.0,
        "primary_indexed_block": head,
        "replica_indexed_block": head,
        "replay_paused": False,
    }
    assert through_replica == through_primary
    assert through_replica["indexed_block"] == head and through_replica["events"]["nft_transfers"]

    table = _cli(pair, live, "status", AUDIFI_DATABASE_REPLICA_URL=standby).stdout
    assert "read from          the replica, caught up with the primary" in table, table
    assert f"indexed block      {head}" in table


def test_a_replica_held_behind_is_reported_behind_and_verify_reads_the_primary(
    pair: Pair, live: LiveChain
) -> None:
    primary, standby = pair.primary.url(), pair.standby.url()
    before = _indexed(pair)
    asyncio.run(pause_replay(standby))
    live.workload.round(150)
    asyncio.run(follow_to_head(primary, live.chain))
    head = _indexed(pair)
    assert head > before

    report = _status(pair, live, standby)
    lag = report.pop("replica")
    assert report["indexed_block"] == before, "status shows what readers of the replica see"
    assert (lag["caught_up"], lag["replay_paused"]) == (False, True)
    assert (lag["primary_indexed_block"], lag["replica_indexed_block"]) == (head, before)
    assert lag["lag_blocks"] == head - before
    assert lag["lag_bytes"] > 0 and lag["lag_seconds"] > 0
    table = _cli(pair, live, "status", AUDIFI_DATABASE_REPLICA_URL=standby).stdout
    assert f"the replica, BEHIND the primary by {head - before} blocks" in table, table
    assert f"(its checkpoint {before}, the primary's {head})" in table
    assert "replay paused" in table

    # Read as it is, the replica would make verify report what it lacks as differences.
    assert asyncio.run(_verify_reading_the_replica(primary, standby, live, head)), "no false alarm"

    waited = _cli(
        pair,
        live,
        *("verify", "--from-block", "0", "--to-block", str(head)),
        AUDIFI_DATABASE_REPLICA_URL=standby,
        AUDIFI_DATABASE_REPLICA_WAIT_SECONDS="0.5",
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert waited.stdout.startswith(f"verify 0..{head}: no differences ("), waited.stdout
    (warning,) = _events(waited.stderr, "db_replica_behind")
    assert warning["level"] == "warning" and warning["reading"] == "primary"
    assert (warning["lag_blocks"], warning["replay_paused"]) == (head - before, True)
    assert not _events(waited.stderr, "verify_reads")


async def _verify_reading_the_replica(
    primary: str, standby: str, live: LiveChain, head: int
) -> tuple[str, ...]:
    """The differences verify reports reading the replica without waiting for it."""
    settings = settings_for(primary, live.chain, database_replica_url=standby)
    async with open_pipeline(settings) as p, open_replica(settings) as replica:
        assert replica is not None
        stale = Store(replica, p.store.chain_id, reorg_window=p.reorg_window)
        return (await verify(p, 0, head, index=stale)).differences


def test_verify_waits_for_the_replica_to_replay_what_the_primary_held_at_its_start(
    pair: Pair, live: LiveChain
) -> None:
    primary, standby = pair.primary.url(), pair.standby.url()
    asyncio.run(pause_replay(standby))
    live.workload.round(100)
    asyncio.run(follow_to_head(primary, live.chain))
    head = _indexed(pair)
    differences = asyncio.run(_verify_after_a_resume(primary, standby, live, head))
    assert differences == ()

    result = _cli(
        pair,
        live,
        *("verify", "--from-block", "0", "--to-block", str(head)),
        AUDIFI_DATABASE_REPLICA_URL=standby,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"verify 0..{head}: no differences ("), result.stdout
    (reads,) = _events(result.stderr, "verify_reads")
    assert reads["database"] == "replica"
    assert not _events(result.stderr, "db_replica_behind")

    against = _cli(
        pair,
        live,
        *("verify", "--from-block", "0", "--to-block", str(head), "--against", live.chain.url),
        AUDIFI_DATABASE_REPLICA_URL=standby,
    )
    assert against.returncode == 0, against.stdout + against.stderr
    assert "against another provider: no differences" in against.stdout, against.stdout
    assert [e["database"] for e in _events(against.stderr, "verify_reads")] == ["replica"]


async def _verify_after_a_resume(
    primary: str, standby: str, live: LiveChain, head: int
) -> tuple[str, ...]:
    """Start choosing where to read while replay is paused, resume it once the choice
    waits on the replica's replay position: the replica is read, and agrees."""
    settings = settings_for(primary, live.chain, database_replica_url=standby)
    async with open_pipeline(settings) as p, open_replica(settings) as replica:
        assert replica is not None
        choosing = asyncio.ensure_future(index_to_read(p, replica, wait=30))
        await eventually(
            lambda: _asks_for_replay_position(standby), within=10, what="verify to wait"
        )
        assert not choosing.done()
        await resume_replay(standby)
        index = await asyncio.wait_for(choosing, 30)
        assert index.pool is replica
        return (await verify(p, 0, head, index=index)).differences


async def _asks_for_replay_position(standby: str) -> bool:
    conn = await pg.connect(standby)
    try:
        return bool(
            await conn.fetchval(
                "select count(*) from pg_stat_activity "
                "where query like '%pg_last_wal_replay_lsn() >= $1%' and pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


def test_a_server_that_is_not_a_standby_of_the_primarys_database_is_refused(
    pair: Pair, live: LiveChain
) -> None:
    head = _indexed(pair)
    not_a_standby = pair.primary.url()  # carries SECRET as its password
    for args in (["status"], ["verify", "--from-block", "0", "--to-block", str(head)]):
        result = _cli(pair, live, *args, AUDIFI_DATABASE_REPLICA_URL=not_a_standby)
        assert result.returncode == 2, result.stdout + result.stderr
        assert (
            "error: AUDIFI_DATABASE_REPLICA_URL: the server is not a standby "
            "(pg_is_in_recovery() is false)" in result.stderr
        ), result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert result.stdout == ""

    other_database = pg.database_url(pair.standby.url(), "template1")
    result = _cli(pair, live, "status", AUDIFI_DATABASE_REPLICA_URL=other_database)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "error: AUDIFI_DATABASE_REPLICA_URL: names database 'template1', "
        "AUDIFI_DATABASE_URL 'postgres': name the same database" in result.stderr
    ), result.stderr


async def test_the_daemons_sampler_says_unknown_while_the_replica_is_no_standby(
    pair: Pair,
) -> None:
    primary = pair.primary.url()
    settings = load_settings(
        database_url=primary, database_replica_url=primary, database_replica_sample_interval=0.05
    )
    pool = await asyncpg.create_pool(primary, min_size=1, max_size=2)
    stop = asyncio.Event()
    try:
        with structlog.testing.capture_logs() as logs:
            sampler = asyncio.create_task(
                sample_replica_lag(settings, pool, DEFAULT_CHAIN_ID, stop)
            )
            await eventually(
                lambda: _logged(logs, "db_replica_unmeasured"), within=10, what="a warning"
            )
            stop.set()
            await asyncio.wait_for(sampler, 10)
    finally:
        await pool.close()
    (warning,) = [e for e in logs if e["event"] == "db_replica_unmeasured"]
    assert "is not a standby" in warning["error"] and warning["log_level"] == "warning"
    assert REGISTRY.get_sample_value(SAMPLED) == 0, "never measured"
    for unit in ("bytes", "seconds", "blocks"):
        value = REGISTRY.get_sample_value(LAG + unit)
        assert value is not None and math.isnan(value), (unit, value)


async def _logged(logs: Sequence[Mapping[str, Any]], event: str) -> bool:
    return any(e["event"] == event for e in logs)


def test_the_daemon_exports_the_replicas_lag(pair: Pair, live: LiveChain, tmp_path: Path) -> None:
    primary, standby = pair.primary.url(), pair.standby.url()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = indexer_env(
        primary,
        live.chain,
        AUDIFI_METRICS_PORT=str(port),
        AUDIFI_DATABASE_REPLICA_URL=standby,
        AUDIFI_DATABASE_REPLICA_SAMPLE_INTERVAL="0.2",
    )
    log = tmp_path / "daemon.log"
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        _wait_for_lag(base, log, blocks=0, what="the replica measured caught up")

        before = _indexed(pair)
        asyncio.run(pause_replay(standby))
        live.workload.round(100)
        head = live.head()
        behind = _wait_for_lag(base, log, blocks=head - before, what="the lag of a paused replica")
        assert behind[LAG + "bytes"] > 0 and behind[LAG + "seconds"] > 0, behind

        asyncio.run(resume_replay(standby))
        caught_up = _wait_for_lag(base, log, blocks=0, what="the replica caught up again")
        assert caught_up[SAMPLED] >= behind[SAMPLED] > 0
        daemon.send_signal(signal.SIGTERM)
        assert wait_exit(daemon, 15, log=log) == 0


def _wait_for_lag(base: str, log: Path, *, blocks: int, what: str) -> dict[str, float]:
    """The replica's metrics once they show `blocks` of lag (0: caught up in every unit)."""

    def lag() -> dict[str, float] | None:
        samples = scrape(base) or {}
        found = {k: v for k, v in samples.items() if k.startswith(LAG) or k == SAMPLED}
        if found.get(LAG + "blocks") != blocks or not found.get(SAMPLED):
            return None
        if blocks == 0 and (found[LAG + "bytes"], found[LAG + "seconds"]) != (0, 0):
            return None
        return found

    return wait_until(lag, timeout=60, what=lambda: f"{what}:\n{log.read_text()[-2000:]}")
