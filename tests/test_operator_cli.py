"""What the CLI and the daemon tell an operator: the port a daemon bound when asked for
any free one, a line for a command that succeeded silently before, and which
dependency a failing step failed on."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from indexer.devchain.anvil import free_port
from tests.helpers.chain import indexer_env, run_cli, running_indexer, wait_exit
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.nodes import proxies_on_a_thread
from tests.helpers.ops import get, json_lines, scrape
from tests.helpers.polling import wait_until


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=16, events=100) as chain:
        yield chain


def _through(
    database_url: str, live: LiveChain, proxy_url: str, port: int, **extra: str
) -> dict[str, str]:
    """The daemon's environment, with its node behind `proxy_url` and metrics on `port`."""
    return indexer_env(
        database_url, live.chain, AUDIFI_RPC_URL=proxy_url, AUDIFI_METRICS_PORT=str(port), **extra
    )


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
        records = json_lines(log.read_text())
        serving = [r for r in records if r.get("event") == "serving"]
        assert [r["metrics"] for r in serving] == [url]
        assert records[0] is serving[0], "the first line, before any dependency is awaited"


def test_refresh_views_says_what_it_refreshed(database_url: str, live: LiveChain) -> None:
    result = run_cli(database_url, live.chain, "refresh-views")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "refreshed: artist_performance, master_ipo_stats, master_chain_stats, artist_coin_stats\n"
    )


def test_readyz_names_the_dependency_a_failing_step_failed_on_and_recovery_is_logged(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    log = tmp_path / "daemon.log"
    with proxies_on_a_thread(live.chain.url) as (thread, [proxy]):
        env = _through(
            database_url,
            live,
            proxy.url,
            port,
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


def test_sigterm_while_the_node_does_not_answer_stops_at_once(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    """The node holds every request from the start: the daemon waits in its first call,
    which would take the client timeout (15 s) times its retries to fail. Nothing is
    being written, so nothing needs the grace period: the process exits 0 well within
    the 10 s a test allows (it took 13 s, waiting out its retries)."""
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    log = tmp_path / "daemon.log"
    with proxies_on_a_thread(live.chain.url, settings=FaultSettings(hold_s=60.0)) as (
        thread,
        [proxy],
    ):
        thread.call(lambda: proxy.script(Fault.READ_TIMEOUT, times=1_000))
        env = _through(database_url, live, proxy.url, port)
        with running_indexer(["run"], env, log_path=str(log)) as daemon:
            answer = wait_until(lambda: get(ready), timeout=60, what="/readyz to answer")
            assert answer == (503, "waiting for the database and the node\n")
            wait_until(lambda: proxy.stats.requests > 0, timeout=30, what="a request held")
            daemon.send_signal(signal.SIGTERM)
            assert wait_exit(daemon, 10, log=log) == 0
    assert json_lines(log.read_text())[-1]["event"] == "stopped"


def test_while_the_node_is_down_the_head_is_unknown_not_caught_up(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    """lag_blocks stays at its last value while no head can be read: the head's age
    grows instead, and /readyz says how long the head has been unknown."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with proxies_on_a_thread(live.chain.url) as (thread, [proxy]):
        env = _through(
            database_url,
            live,
            proxy.url,
            port,
            AUDIFI_RPC_MAX_RETRIES="0",
        )
        with running_indexer(["run"], env, log_path=str(tmp_path / "daemon.log")):
            ready = f"{base}/readyz"
            wait_until(lambda: (get(ready) or (0, ""))[0] == 200, timeout=60, what="ready")
            assert (scrape(base) or {})["audifi_indexer_head_age_seconds"] < 5
            thread.call(lambda: proxy.script(Fault.HTTP_503, times=100_000))
            answer = wait_until(
                lambda: (r := get(ready)) and "head unknown" in r[1] and r,
                timeout=60,
                what="/readyz to say the head is unknown",
            )
            age = (scrape(base) or {})["audifi_indexer_head_age_seconds"]
    assert answer[0] == 503
    assert "the last step failed on the node" in answer[1]
    assert age >= 5


def _records(result: subprocess.CompletedProcess[str], event: str) -> list[dict[str, object]]:
    *lines, _ = [*result.stderr.splitlines(), ""]
    return [r for r in json_lines("\n".join(lines)) if r.get("event") == event]


def test_backfill_progress_counts_work_done_with_rates_and_an_eta(
    database_url: str, live: LiveChain
) -> None:
    """Re-running a backfill over what is indexed writes no row, but it is work: the
    progress counts the logs processed, not only the new rows."""
    span = ["--from-block", str(live.chain.factory_block), "--to-block", str(live.head())]
    for run in ("first", "again"):
        result = run_cli(database_url, live.chain, "backfill", *span, "--no-audit")
        assert result.returncode == 0, result.stderr
        *_, last = _records(result, "backfill_progress")
        assert last["percent"] == 100.0 and last["eta_s"] == 0, last
        assert isinstance(last["logs"], int) and last["logs"] > 0
        assert isinstance(last["blocks_per_s"], float) and last["blocks_per_s"] > 0
        assert (last["new_rows"] == 0) == (run == "again"), last


def test_a_backfill_serves_its_progress_gauges(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    port = free_port()
    slow = FaultSettings(slow_s=0.2)
    with proxies_on_a_thread(live.chain.url, settings=slow) as (thread, [proxy]):
        thread.call(lambda: proxy.randomize(1.0, [Fault.SLOW]))  # a backfill of some seconds
        env = _through(
            database_url,
            live,
            proxy.url,
            port,
            AUDIFI_BATCH_MAX_LOGS="20",
        )
        span = ["--from-block", str(live.chain.factory_block), "--to-block", str(live.head())]
        log = tmp_path / "backfill.log"
        with running_indexer(["backfill", *span], env, log_path=str(log)) as backfill:
            metrics = wait_until(
                lambda: (
                    (m := scrape(f"http://127.0.0.1:{port}"))
                    and m.get("audifi_indexer_backfill_total_blocks", 0) > 0
                    and m
                ),
                timeout=60,
                what="the backfill's gauges on its /metrics",
            )
            assert wait_exit(backfill, 120, log=log) == 0
    total = live.head() - live.chain.factory_block + 1
    assert metrics["audifi_indexer_backfill_total_blocks"] == total
    assert 0 <= metrics["audifi_indexer_backfill_done_blocks"] <= total


def test_a_daemon_catching_up_logs_its_progress(database_url: str, tmp_path: Path) -> None:
    with sparse_chain(seed=17, events=100) as behind:
        behind.mine(1_500)  # far behind: a catch-up
        log = tmp_path / "daemon.log"
        env = indexer_env(database_url, behind.chain, AUDIFI_START_BLOCK="1")
        with running_indexer(["run"], env, log_path=str(log)):

            def caught_up() -> list[dict[str, object]]:
                records = json_lines(log.read_text()) if log.exists() else []
                return [r for r in records if r.get("event") == "catch_up_progress"]

            lines = wait_until(
                lambda: (found := caught_up()) and found[-1]["percent"] == 100.0 and found,
                timeout=60,
                what="the catch-up's last progress line",
            )
    assert all({"blocks_per_s", "logs", "eta_s", "total_blocks"} <= line.keys() for line in lines)


def test_verify_says_a_contract_is_not_there_yet_rather_than_owner_0x(
    database_url: str, live: LiveChain
) -> None:
    """The index stands at a block before the last master was deployed; verify over the
    whole chain asks ownerOf of its tokens at that block, where it has no code yet."""
    last = max(m.block for m in live.workload.masters)
    first = live.chain.factory_block
    indexed = run_cli(
        database_url,
        live.chain,
        "backfill",
        "--from-block",
        str(first),
        "--to-block",
        str(last - 1),
        "--no-audit",
    )
    assert indexed.returncode == 0, indexed.stderr
    result = run_cli(
        database_url, live.chain, "verify", "--from-block", str(first), "--to-block", str(last + 3)
    )
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert any("no contract there at that block (not deployed yet)" in line for line in lines)
    assert not any(line.endswith("says 0x") for line in lines), lines
    assert f"compared at block {last - 1}, the block the stored state stands for" in lines[-1]
