"""The daemon as an operator sees it: lag through a real Prometheus, /metrics, /healthz
and /readyz, against real anvil and PostgreSQL, with the database stopped, the node
failing, the indexer falling behind, and a restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from indexer.devchain.anvil import DEFAULT_CHAIN_ID, free_port
from indexer.health import Health
from indexer.store.write import WRITE_LOCK
from tests.helpers.chain import indexer_env, running_indexer, wait_exit
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.livechain import Activity, LiveChain, small_chain
from tests.helpers.ops import (
    PROMETHEUS,
    SECRET,
    get,
    get_if,
    is_nan,
    json_lines,
    private_postgres,
    prometheus,
    scrape,
    status,
)
from tests.helpers.polling import eventually, wait_until
from tests.helpers.proxy import RpcProxy

LAG = "audifi_indexer_lag_blocks"
HEAD = "audifi_indexer_chain_head_block"
INDEXED = "audifi_indexer_indexed_block"
# The most a follower polling every 0.2 s may trail a chain making ~10 blocks/s.
SMALL_LAG = 10


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with small_chain(seed=21) as chain:
        yield chain


def _daemon_env(database_url: str, live: LiveChain, port: int, **extra: str) -> dict[str, str]:
    env = indexer_env(database_url, live.chain)
    env.update(AUDIFI_METRICS_PORT=str(port), **extra)
    return env


@pytest.mark.skipif(
    not Path(PROMETHEUS).exists(),
    reason=f"no {PROMETHEUS}: `make tools` installs it (Debian package prometheus)",
)
def test_prometheus_reads_a_small_lag_while_blocks_come_and_zero_when_they_stop(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _daemon_env(database_url, live, port)
    with (
        running_indexer(["run"], env, log_path=str(tmp_path / "daemon.log")) as daemon,
        prometheus(tmp_path, f"127.0.0.1:{port}") as prom,
    ):
        wait_until(lambda: status(base + "/readyz") == 200, timeout=60, what="the daemon ready")
        wait_until(
            lambda: prom.value('up{job="audifi-indexer"}') == 1,
            timeout=30,
            what="Prometheus to scrape the daemon",
        )
        first_head = live.head()
        began = time.time()
        with Activity(live, every=0.1, events=30) as producer:
            wait_until(
                lambda: producer.rounds >= 30 and len(prom.samples(LAG, began, time.time())) >= 5,
                timeout=60,
                what="blocks produced and scraped",
            )
        ended = time.time()
        last_head = live.head()
        assert last_head >= first_head + 30

        lags = [v for _, v in prom.samples(LAG, began, ended)]
        assert len(lags) >= 5
        assert all(0 <= lag <= SMALL_LAG for lag in lags), lags
        indexed = [v for _, v in prom.samples(INDEXED, began, ended)]
        assert indexed == sorted(indexed) and indexed[-1] > indexed[0], "it followed the chain"

        wait_until(
            lambda: prom.value(LAG) == 0 and prom.value(INDEXED) == last_head,
            timeout=30,
            what="Prometheus to see lag 0 at the final head",
        )
        assert prom.value(HEAD) == last_head
        daemon.send_signal(signal.SIGTERM)
        assert wait_exit(daemon, 15) == 0


def test_readyz_follows_the_database_going_away_and_coming_back(
    live: LiveChain, tmp_path: Path
) -> None:
    log_path = tmp_path / "daemon.log"
    with private_postgres() as pg:
        pg.migrate()
        pg.stop()  # the daemon starts first and waits for its database
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = _daemon_env(pg.url(), live, port, AUDIFI_LOG_FORMAT="auto")
        with running_indexer(["run"], env, log_path=str(log_path)) as daemon:
            wait_until(
                lambda: "waiting_for_dependencies" in log_path.read_text(),
                timeout=30,
                what="the daemon to report its missing database",
            )
            pg.start()
            wait_until(lambda: status(base + "/readyz") == 200, timeout=60, what="ready")
            assert status(base + "/healthz") == 200

            pg.stop()
            answer = wait_until(
                lambda: get_if(base + "/readyz", 503),
                timeout=30,
                what="/readyz to turn 503 without its database",
            )
            assert answer[1].startswith("database"), answer
            assert status(base + "/healthz") == 200, "the loop still turns"

            pg.start()
            wait_until(lambda: status(base + "/readyz") == 200, timeout=60, what="ready again")
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 15) == 0

    text = log_path.read_text()
    records = json_lines(text)
    events = {r["event"] for r in records}
    assert {"waiting_for_dependencies", "started", "stopped"} <= events
    waiting = next(r for r in records if r["event"] == "waiting_for_dependencies")
    assert ":***@127.0.0.1" in waiting["database"]
    assert SECRET not in text


async def test_lag_metrics_and_readyz_while_idle_catching_up_failing_and_after_restart(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    """Lag is read from /metrics directly. Steps are one block each and the proxy slows
    eth_getLogs by 0.1 s when told to, so catching up 20 blocks takes seconds."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "daemon.log"
    async with RpcProxy(live.chain.url, settings=FaultSettings(slow_s=0.1)) as proxy:
        env = _daemon_env(
            database_url,
            live,
            port,
            AUDIFI_RPC_URL=proxy.url,
            AUDIFI_GETLOGS_INITIAL_RANGE="1",
            AUDIFI_GETLOGS_MAX_RANGE="1",
            AUDIFI_READY_MAX_LAG_BLOCKS="5",
            AUDIFI_RPC_MAX_RETRIES="1",
            AUDIFI_START_BLOCK=str(live.head() - 2),  # lag is the point, not the history
        )
        with running_indexer(["run"], env, log_path=str(log_path)) as daemon:
            await _idle_at_the_head(base, live.head())
            await _catching_up(base, live, proxy)
            await _node_failing(base, proxy)
            await _stop(daemon)

        head = live.mine(20)  # blocks the daemon misses while it is down
        async with WriterLock(database_url) as lock:
            restarted_log = tmp_path / "restarted.log"
            with running_indexer(["run"], env, log_path=str(restarted_log)) as daemon:
                seen = await eventually(
                    lambda: _scrape_if(base, lambda m: m[HEAD] == head),
                    within=30,
                    what="the restarted daemon's first step to begin",
                )
                # Its commit waits for the lock: lag is unknown, never a stale or default 0.
                assert is_nan(seen[LAG]) and is_nan(seen[INDEXED]), seen
                assert (await _get(base + "/readyz")) == (503, "not caught up yet\n")
                await lock.release()
                await _idle_at_the_head(base, head)
                await _stop(daemon)
    for path in (log_path, restarted_log):
        assert {"started", "step", "stopped"} <= {r["event"] for r in json_lines(path.read_text())}


async def _idle_at_the_head(base: str, head: int) -> None:
    seen = await eventually(
        lambda: _scrape_if(base, lambda m: m[INDEXED] == head and m[LAG] == 0),
        within=60,
        what=f"lag 0 at block {head}",
    )
    assert seen[HEAD] == head
    assert seen["audifi_indexer_lag_seconds"] == 0
    assert seen["audifi_indexer_ready"] == 1
    assert await _get(base + "/readyz") == (200, "ok\n")
    assert (await _get(base + "/healthz"))[0] == 200


async def _catching_up(base: str, live: LiveChain, proxy: RpcProxy) -> None:
    proxy.script(Fault.SLOW, times=20, method="eth_getLogs")
    head = live.mine(20)
    answer = await eventually(
        lambda: _get_if(base + "/readyz", 503), within=30, what="/readyz 503 while behind"
    )
    assert answer[1].startswith("lag"), answer
    seen = await eventually(lambda: _scrape_if(base, lambda m: True), within=5, what="/metrics")
    assert seen[HEAD] == head
    assert seen[LAG] == seen[HEAD] - seen[INDEXED] > 5, seen
    assert seen["audifi_indexer_ready"] == 0
    await _idle_at_the_head(base, head)


async def _node_failing(base: str, proxy: RpcProxy) -> None:
    proxy.script(Fault.HTTP_503, times=6)  # three steps' worth, with one retry each
    answer = await eventually(
        lambda: _get_if(base + "/readyz", 503), within=30, what="/readyz 503 while the node fails"
    )
    assert "step failed" in answer[1], answer
    assert (await _get(base + "/healthz"))[0] == 200, "the loop still turns"
    await eventually(
        lambda: _get_if(base + "/readyz", 200), within=30, what="/readyz 200 once the node answers"
    )


async def _stop(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait without blocking the loop the proxy runs on."""
    daemon.send_signal(signal.SIGTERM)

    async def exited() -> bool:
        return daemon.poll() is not None

    await eventually(exited, within=20, what="the daemon to exit on SIGTERM")
    assert daemon.returncode == 0


class WriterLock:
    """Holds the chain's writer lock, so the daemon's commits wait until release()."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> WriterLock:
        self.conn = await asyncpg.connect(self.url)
        await self.conn.execute("begin")
        await self.conn.execute(
            "select pg_advisory_xact_lock($1, $2)", WRITE_LOCK, DEFAULT_CHAIN_ID % 2**31
        )
        return self

    async def release(self) -> None:
        if self.conn is not None:
            await self.conn.close()  # ends the transaction and its lock
            self.conn = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def _get(url: str) -> tuple[int, str]:
    answer = await asyncio.to_thread(get, url)
    assert answer is not None, f"nothing answers at {url}"
    return answer


async def _get_if(url: str, code: int) -> tuple[int, str] | None:
    return await asyncio.to_thread(get_if, url, code)


async def _scrape_if(
    base: str, wanted: Callable[[dict[str, float]], bool]
) -> dict[str, float] | None:
    seen = await asyncio.to_thread(scrape, base)
    return seen if seen is not None and wanted(seen) else None


def test_a_leader_that_stands_by_exports_no_lag_or_progress() -> None:
    """A standby indexes nothing: its lag and progress are unknown (NaN), so the lag and
    progress alerts, which compare those values, speak of the leader only."""
    health = Health(None, max_lag_blocks=10)
    health.progressed(90, head=100, timestamp=int(time.time()) - 5)  # while it led
    assert REGISTRY.get_sample_value("audifi_indexer_lag_blocks") == 10
    health.standing_by("replica-1")
    for name in (
        "audifi_indexer_lag_blocks",
        "audifi_indexer_lag_seconds",
        "audifi_indexer_indexed_block",
        "audifi_indexer_chain_head_block",
        "audifi_indexer_last_progress_timestamp_seconds",
    ):
        assert is_nan(REGISTRY.get_sample_value(name)), name
    assert REGISTRY.get_sample_value("audifi_indexer_ready") == 1
