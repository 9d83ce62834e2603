"""Soak: the daemon follows a chain with live activity and reorgs through a proxy that
breaks 20% of the requests, every fault kind in turn, for a bounded time
(AUDIFI_SOAK_SECONDS, default 60). At the end the database is exactly what a clean
backfill stores, with no duplicate, and /metrics counted the retries."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.devchain.anvil import free_port
from tests.helpers import pg
from tests.helpers.chain import indexer_env, running_indexer, wait_exit
from tests.helpers.chainstate import checkpoint, duplicates, mismatches, oracle, reference, snapshot
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.livechain import Activity, LiveChain, sparse_chain
from tests.helpers.nodes import proxies_on_a_thread
from tests.helpers.ops import get, json_lines, parse_metrics
from tests.helpers.polling import wait_until
from tests.helpers.proxy import RpcProxy

SOAK_SECONDS = float(os.environ.get("AUDIFI_SOAK_SECONDS", "60"))
FAULT_RATE = 0.2
# hold_s above the daemon's RPC timeout: a held request is a read timeout for it.
FAULTS = FaultSettings(retry_after_s=1, slow_s=0.3, hold_s=4.0, head_jump=3)


@pytest.fixture
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=47, events=300) as chain:
        yield chain


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 240)
def test_the_daemon_survives_a_fifth_of_requests_failing_and_reorgs(
    database_url: str,
    live: LiveChain,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "daemon.log"
    with proxies_on_a_thread(live.chain.url, seed=2026, settings=FAULTS) as (thread, [proxy]):
        thread.call(lambda: proxy.randomize(FAULT_RATE, list(Fault)))
        env = indexer_env(
            database_url,
            live.chain,
            AUDIFI_RPC_URL=proxy.url,
            AUDIFI_METRICS_PORT=str(port),
            AUDIFI_RPC_TIMEOUT="2",
            AUDIFI_POLL_INTERVAL="0.1",
            AUDIFI_START_BLOCK=str(live.chain.factory_block),
        )
        with running_indexer(["run"], env, log_path=str(log_path)) as daemon:
            _until_at(live.head(), daemon, live, database_url, pg_databases, log_path)

            # Each reorg replaces blocks the daemon has indexed: it must notice every one.
            def indexed(block: int) -> None:
                _until_at(block, daemon, live, database_url, pg_databases, log_path)

            with Activity(
                live, every=0.2, events=25, reorg_every=25, seed=5, before_reorg=indexed
            ) as activity:
                # Besides the random ones, each kind once in turn, a second apart.
                for fault in _every_kind_for(SOAK_SECONDS):
                    assert daemon.poll() is None, log_path.read_text()[-3000:]
                    if fault is not None:
                        thread.call(lambda f=fault: _script(proxy, f))
                    time.sleep(1.0)
            head = live.head()
            # Faults stay on while the daemon catches up with the last block.
            _until_at(head, daemon, live, database_url, pg_databases, log_path)
            metrics = parse_metrics(_metrics(port))
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 15) == 0
        injected = thread.call(lambda: dict(proxy.stats.injected))
        requests = thread.call(lambda: proxy.stats.requests)

    assert activity.reorgs, "the soak should include reorgs"
    assert set(injected) == set(Fault), f"fault kinds never injected: {set(Fault) - set(injected)}"
    retries = sum(v for k, v in metrics.items() if k.startswith("audifi_indexer_rpc_retries_total"))
    assert retries > 0
    assert metrics["audifi_indexer_reorgs_total"] >= len(activity.reorgs)

    problems = pg_databases.run(
        mismatches(database_url, oracle(live.chain.url, live.chain.factory))
    )
    assert problems == [], problems[:5]
    assert pg_databases.run(duplicates(database_url)) == {}
    name = pg_databases.create(template=template_db)
    try:
        clean = pg_databases.run(reference(pg_databases.url(name), live.chain, head))
    finally:
        pg_databases.drop(name)
    assert pg_databases.run(snapshot(database_url)) == clean

    events = [r["event"] for r in json_lines(log_path.read_text())]
    print(
        f"soak: {SOAK_SECONDS:.0f}s, {requests} requests, {activity.rounds} rounds, "
        f"reorgs {activity.reorgs}, "
        f"head {head}, faults {sum(injected.values())} {injected}, rpc retries {retries:.0f}, "
        f"step retries {events.count('step_retry')}"
    )


def _every_kind_for(seconds: float) -> Iterator[Fault | None]:
    """One item a second: every fault kind in turn, then None until the time is up."""
    kinds = list(Fault)
    for second in range(max(int(seconds), len(kinds))):
        yield kinds[second] if second < len(kinds) else None


def _script(proxy: RpcProxy, fault: Fault) -> None:
    method = {Fault.EMPTY_LOGS: "eth_getLogs", Fault.HEAD_JUMP: "eth_blockNumber"}
    proxy.script(fault, method=method.get(fault))


def _until_at(
    block: int,
    daemon: subprocess.Popen[bytes],
    live: LiveChain,
    url: str,
    databases: pg.Databases,
    log_path: Path,
) -> None:
    """Until the checkpoint is `block` as the chain has it now: by hash, since a reorg
    keeps the height."""
    wait_until(
        lambda: (
            daemon.poll() is not None
            or databases.run(checkpoint(url)) == (block, live.block_hash(block))
        ),
        timeout=120,
        what=f"the daemon to reach block {block}",
    )
    assert daemon.poll() is None, log_path.read_text()[-3000:]


def _metrics(port: int) -> str:
    answer = get(f"http://127.0.0.1:{port}/metrics")
    assert answer is not None and answer[0] == 200, answer
    return answer[1]
