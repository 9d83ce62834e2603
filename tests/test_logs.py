"""Logs off a terminal are JSON lines, on one they are for people; and no password ever
shows: not in the daemon's logs, a one-shot command's error, `status --json`, or /metrics.
(The daemon's logs through a database outage are checked in test_metrics_health.)"""

from __future__ import annotations

import json
import logging
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from indexer import logs
from indexer.devchain.anvil import free_port
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, wait_exit
from tests.helpers.livechain import LiveChain, small_chain
from tests.helpers.ops import get, json_lines, status, with_secret
from tests.helpers.polling import wait_until

RPC_SECRET = "rpc-s3cret-key"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with small_chain(seed=41, events=1_000) as chain:
        yield chain


def _env(database_url: str, live: LiveChain, **extra: str) -> dict[str, str]:
    """The daemon's environment as in a container: log format left to auto-detection."""
    env = indexer_env(database_url, live.chain)
    del env["AUDIFI_LOG_FORMAT"]
    env.update(extra)
    return env


def test_the_daemon_status_and_metrics_never_show_the_password(
    database_url: str, live: LiveChain, tmp_path: object
) -> None:
    url, secret = with_secret(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(url, live, AUDIFI_METRICS_PORT=str(port))
    log_path = f"{tmp_path}/daemon.log"
    with running_indexer(["run"], env, log_path=log_path) as daemon:
        wait_until(lambda: status(base + "/readyz") == 200, timeout=60, what="the daemon ready")
        answer = get(base + "/metrics")
        assert answer is not None and answer[0] == 200
        assert "audifi_indexer_build_info{" in answer[1]
        assert secret not in answer[1]

        shown = subprocess.run(
            [*INDEXER, "status", "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["lag_blocks"] == 0
        json_lines(shown.stderr)
        assert secret not in shown.stdout + shown.stderr

        daemon.send_signal(signal.SIGTERM)
        assert wait_exit(daemon, 15) == 0

    with open(log_path) as f:
        text = f.read()
    assert secret not in text
    records = json_lines(text)
    assert {"started", "step", "stopped"} <= {r["event"] for r in records}
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys(), record
    for step in (r for r in records if r["event"] == "step"):
        assert {"from_block", "to_block", "n_logs", "n_new", "elapsed_ms"} <= step.keys(), step


@pytest.mark.parametrize(
    "case",
    ["database-down", "no-such-database", "schema-behind", "node-down", "beyond-head"],
)
def test_a_failing_one_shot_command_says_why_in_one_line_without_the_password(
    case: str, database_url: str, empty_database_url: str, live: LiveChain
) -> None:
    url, secret = with_secret(database_url)
    command, env, says = _failing(case, url, secret, empty_database_url, live.head())
    result = subprocess.run(
        [*INDEXER, *command],
        env={**_env(url, live), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # A range beyond the head is the operator's mistake (usage, 2); the rest are failures (1).
    assert result.returncode == (2 if case == "beyond-head" else 1), result.stderr
    *logged, last = result.stderr.splitlines()
    json_lines("\n".join(logged))
    assert last.startswith("error: ") and len(last) < 500, last
    assert says in last, last
    assert "ssl:default" not in last  # aiohttp's noise
    if case == "schema-behind":  # the daemon's last line says why it stopped
        stopped = json_lines("\n".join(logged))[-1]
        assert (stopped["event"], stopped["level"]) == ("stopped", "error"), stopped
        assert says in stopped["error"]
    assert secret not in result.stderr + result.stdout
    assert RPC_SECRET not in result.stderr + result.stdout


def _failing(
    case: str, url: str, secret: str, empty_url: str, head: int
) -> tuple[list[str], dict[str, str], str]:
    """The command and the environment changes that make it fail in the way `case` says,
    and what its one line must say: which dependency, where."""
    if case == "database-down":
        env = {"AUDIFI_DATABASE_URL": f"postgresql://u:{secret}@127.0.0.1:1/db"}
        return ["status"], env, "PostgreSQL at 127.0.0.1:1/db"
    if case == "no-such-database":
        parts = urlsplit(url)
        missing = parts._replace(path="/audifi_no_such_database").geturl()
        where = f"{parts.hostname}:{parts.port}/audifi_no_such_database: the database does not"
        command = ["verify", "--from-block", "0", "--to-block", "1"]
        return command, {"AUDIFI_DATABASE_URL": missing}, where
    if case == "schema-behind":
        return ["run"], {"AUDIFI_DATABASE_URL": with_secret(empty_url)[0]}, "migrate up"
    if case == "node-down":
        node = f"http://user:{RPC_SECRET}@127.0.0.1:1/v3/{RPC_SECRET}"
        env = {"AUDIFI_RPC_URL": node, "AUDIFI_RPC_MAX_RETRIES": "0"}
        return ["status"], env, "the node at 127.0.0.1:1: cannot connect: Connection refused"
    assert case == "beyond-head"
    command = ["backfill", "--from-block", "0", "--to-block", str(head + 100)]
    return command, {}, "beyond the node's head"


def test_logs_on_a_terminal_are_for_people(database_url: str, live: LiveChain) -> None:
    env = _env(database_url, live)
    args = ["backfill", "--from-block", str(live.chain.factory_block), "--to-block", "3"]
    parent, child = pty.openpty()
    try:
        process = subprocess.Popen([*INDEXER, *args], env=env, stderr=child)
        os.close(child)
        child = -1
        output = _read_all(parent)
        assert process.wait(60) == 0, output
    finally:
        os.close(parent)
        if child != -1:
            os.close(child)
    assert "backfill_done" in output
    assert not any(line.startswith("{") for line in output.splitlines()), output


def _read_all(fd: int) -> str:
    """Everything written to a pty until its other end closes."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_other_libraries_log_no_traceback_below_debug_and_say_repeats_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncpg's pool logs "Failed to restore the pool connection floor" with a long
    traceback, every few seconds while the database is down: one line, then a count."""
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    quieter = logs.Quieter(tracebacks=False)

    def record(msg: str) -> logging.LogRecord:
        try:
            raise ConnectionRefusedError("connect call failed")
        except ConnectionRefusedError:
            return logging.LogRecord(
                "asyncpg.pool", logging.WARNING, "", 0, msg, (), sys.exc_info()
            )

    floor = "Failed to restore the pool connection floor; retrying"
    first = record(floor)
    assert quieter.filter(first) and first.exc_info is None
    now[0] += 5
    assert not quieter.filter(record(floor))
    assert quieter.filter(record("another message"))
    now[0] += 30
    again = record(floor)
    assert quieter.filter(again)
    failure = "ConnectionRefusedError('connect call failed')"  # kept, without the traceback
    assert first.getMessage() == f"{floor}: {failure}"
    assert again.getMessage() == f"{floor}: {failure} (and 1 more like it since the last line)"
    kept = record(floor)
    assert logs.Quieter(tracebacks=True).filter(kept) and kept.exc_info is not None


def test_a_command_waiting_on_a_node_that_does_not_answer_says_so_as_it_waits(
    database_url: str, live: LiveChain
) -> None:
    """`status` against a closed port retries before it gives up: the operator sees a
    warning naming the node at once (one line per interval, not one per retry), then
    the error; it used to print nothing until the end."""
    env = {**_env(database_url, live), "AUDIFI_RPC_URL": "http://127.0.0.1:1/"}
    result = subprocess.run(
        [*INDEXER, "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    *logged, last = result.stderr.splitlines()
    retries = [r for r in json_lines("\n".join(logged)) if r["event"] == "rpc_retry"]
    assert len(retries) == 1 and retries[0]["level"] == "warning", retries
    assert "127.0.0.1:1: cannot connect" in retries[0]["error"]
    assert last.startswith("error: posting to the node at 127.0.0.1:1: cannot connect")
