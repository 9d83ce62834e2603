"""The progress watchdog, on the real daemon: a node that freezes eth_getLogs while its
head keeps moving leaves the process up and the checkpoint frozen. /readyz must say
so with the reason, the stalled gauge must be 1, and the process must then exit
non-zero so that the orchestrator restarts it; a brief pause must not trip it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.devchain.anvil import free_port
from tests.helpers.chain import indexer_env, running_indexer, wait_exit
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.livechain import Activity, LiveChain, sparse_chain
from tests.helpers.nodes import LoopThread, proxies_on_a_thread
from tests.helpers.ops import get, json_lines, scrape
from tests.helpers.polling import wait_until
from tests.helpers.proxy import RpcProxy

FROZEN = 1_000_000  # requests holding eth_getLogs: for the rest of the test


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=77, events=300) as chain:
        yield chain


def _env(database_url: str, live: LiveChain, rpc_url: str, port: int) -> dict[str, str]:
    return indexer_env(
        database_url,
        live.chain,
        AUDIFI_RPC_URL=rpc_url,
        AUDIFI_METRICS_PORT=str(port),
        AUDIFI_RPC_TIMEOUT="1",
        AUDIFI_RPC_MAX_RETRIES="1",
        AUDIFI_STALL_SECONDS="4",
        AUDIFI_STALL_BLOCKS="100000",
        AUDIFI_STALL_EXIT_SECONDS="4",
        AUDIFI_AUDIT_DEPTH="4",
        AUDIFI_START_BLOCK=str(live.chain.factory_block),
    )


def _ready(base: str) -> tuple[int, str] | None:
    return get(f"{base}/readyz")


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    base: str  # its metrics and health server
    log: Path

    def freeze_get_logs(self, thread: LoopThread, proxy: RpcProxy, times: int) -> None:
        """Hold the next `times` requests that carry an eth_getLogs (the proxy's READ_TIMEOUT)."""
        thread.call(lambda: proxy.script(Fault.READ_TIMEOUT, times=times, method="eth_getLogs"))


@contextmanager
def _ready_daemon(
    database_url: str, live: LiveChain, tmp_path: Path, hold_s: float
) -> Iterator[tuple[Daemon, LoopThread, RpcProxy]]:
    """The daemon behind a proxy whose held requests last `hold_s`, once it is ready."""
    port = free_port()
    daemon_log = tmp_path / "daemon.log"
    settings = FaultSettings(hold_s=hold_s)
    with proxies_on_a_thread(live.chain.url, settings=settings) as (thread, [proxy]):
        env = _env(database_url, live, proxy.url, port)
        with running_indexer(["run"], env, log_path=str(daemon_log)) as process:
            daemon = Daemon(process, f"http://127.0.0.1:{port}", daemon_log)
            wait_until(lambda: (_ready(daemon.base) or (0, ""))[0] == 200, timeout=60, what="ready")
            yield daemon, thread, proxy


def test_frozen_get_logs_with_a_moving_head_is_a_stall_then_an_exit(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    with _ready_daemon(database_url, live, tmp_path, hold_s=20.0) as (daemon, thread, proxy):
        daemon.freeze_get_logs(thread, proxy, FROZEN)
        with Activity(live, every=0.3, events=10):
            answer = wait_until(
                lambda: (r := _ready(daemon.base)) and "stalled" in r[1] and r,
                timeout=30,
                what="/readyz to report the stall",
            )
            assert answer[0] == 503
            assert "the checkpoint has stayed at block" in answer[1]
            assert (scrape(daemon.base) or {}).get("audifi_indexer_stalled") == 1.0
            code = wait_exit(daemon.process, 30, log=daemon.log)
    assert code == 1
    *lines, last = daemon.log.read_text().splitlines()
    assert last.startswith("error: stalled: the checkpoint has stayed at block"), last
    events = [line.get("event") for line in json_lines("\n".join(lines))]
    assert "stalled" in events and "fatal" in events


def test_a_pause_shorter_than_the_stall_time_is_not_a_stall(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    with _ready_daemon(database_url, live, tmp_path, hold_s=1.5) as (daemon, thread, proxy):
        daemon.freeze_get_logs(thread, proxy, 2)
        with Activity(live, every=0.3, events=10) as activity:
            wait_until(lambda: activity.rounds >= 20, timeout=60, what="20 rounds")
        wait_until(lambda: thread.call(lambda: proxy.pending) == 0, timeout=10, what="held")
        wait_until(
            lambda: (_ready(daemon.base) or (0, ""))[0] == 200, timeout=30, what="ready again"
        )
        assert daemon.process.poll() is None
        metrics = scrape(daemon.base) or {}
        assert metrics.get("audifi_indexer_stalled") == 0.0
        # Beside it, the audit's deep pass: one committed range, audited 4 blocks deep.
        assert metrics.get("audifi_indexer_committed_ranges") == 1.0
        wait_until(
            lambda: (
                (scrape(daemon.base) or {}).get("audifi_indexer_audited_block", -1)
                >= live.head() - 8
            ),
            timeout=30,
            what="the deep audit near the head",
        )
    events = [line.get("event") for line in json_lines(daemon.log.read_text())]
    assert "stalled" not in events
