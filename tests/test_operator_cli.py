"""What the CLI and the daemon tell an operator: the port a daemon bound when asked for
any free one, a line for a command that succeeded silently before, and which
dependency a failing step failed on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from indexer.devchain.anvil import free_port
from tests.helpers.chain import indexer_env, run_cli, running_indexer
from tests.helpers.faults import Fault
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.nodes import proxies_on_a_thread
from tests.helpers.ops import get, json_lines
from tests.helpers.polling import wait_until


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=16, events=100) as chain:
        yield chain


def test_metrics_port_0_logs_the_port_it_bound(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    env = indexer_env(database_url, live.chain, AUDIFI_METRICS_PORT="0")
    with running_indexer(["run"], env, log_path=str(log)):

        def started() -> list[dict[str, object]]:
            text = log.read_text() if log.exists() else ""
            return [r for r in json_lines(text) if r.get("event") == "started"]

        (line,) = wait_until(started, timeout=60, what="the daemon's started line")
        url = str(line["metrics"])
        port = urlsplit(url).port
        assert port not in (None, 0), url
        answer = get(url)
        assert answer is not None and answer[0] == 200
        serving = [r for r in json_lines(log.read_text()) if r.get("event") == "serving"]
        assert [r["metrics"] for r in serving] == [url]


def test_refresh_views_says_what_it_refreshed(database_url: str, live: LiveChain) -> None:
    result = run_cli(database_url, live.chain, "refresh-views")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "refreshed: artist_performance, master_ipo_stats\n"


def test_readyz_names_the_dependency_a_failing_step_failed_on_and_recovery_is_logged(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    log = tmp_path / "daemon.log"
    with proxies_on_a_thread(live.chain.url) as (thread, [proxy]):
        env = indexer_env(
            database_url,
            live.chain,
            AUDIFI_RPC_URL=proxy.url,
            AUDIFI_METRICS_PORT=str(port),
            AUDIFI_RPC_MAX_RETRIES="0",
            AUDIFI_AUDIT="false",
        )
        with running_indexer(["run"], env, log_path=str(log)):
            wait_until(lambda: (get(ready) or (0, ""))[0] == 200, timeout=60, what="ready")
            thread.call(lambda: proxy.script(Fault.HTTP_503, times=6, method="eth_getLogs"))
            live.mine(3)
            answer = wait_until(
                lambda: (r := get(ready)) and r[0] == 503 and r,
                timeout=30,
                what="/readyz to fail",
            )
            wait_until(lambda: (get(ready) or (0, ""))[0] == 200, timeout=60, what="ready again")
    assert answer[1].startswith("the last step failed on the node: node answered HTTP 503")
    records = json_lines(log.read_text())
    retries = [r for r in records if r["event"] == "rpc_retry"]
    assert retries and all(r["level"] == "warning" for r in retries)
    assert len(retries) < 6, "one line per URL per interval, not one per fault"
    (recovered,) = [r for r in records if r["event"] == "recovered"]
    assert recovered["level"] == "info" and recovered["after_failed_steps"] >= 1
