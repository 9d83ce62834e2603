"""`make demo`: chain, contracts, live activity and the daemon; SIGTERM stops all of it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import asyncpg

from tests.helpers.chain import wait_exit
from tests.helpers.polling import wait_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _indexed_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("select count(*) from token_transfers"))
    finally:
        await conn.close()


async def _largest_balance(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("select max(balance) from token_holders"))
    finally:
        await conn.close()


def test_demo_indexes_live_activity_and_sigterm_leaves_nothing_behind(
    empty_database_url: str,
) -> None:
    import asyncio

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIFI_")}
    env.update(AUDIFI_DATABASE_URL=empty_database_url, AUDIFI_METRICS_PORT="0")
    demo = subprocess.Popen(
        [sys.executable, "-m", "indexer.devchain.demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pids: list[int] = []
    printed: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            printed.append(line.rstrip("\n"))
            pids += [int(p) for p in re.findall(r"pid (\d+)", line)]
            if "simulating activity" in line:
                break
        assert len(pids) == 2, "the demo names its anvil and indexer PIDs"
        # Commands to paste, not placeholders; the daemon's own lines go to its log file.
        psql = '  psql "$AUDIFI_DATABASE_URL" -c \'select'
        assert any(line.startswith(psql) for line in printed), printed
        assert any(line.endswith(".venv/bin/audifi-indexer status") for line in printed)
        assert all(line.startswith(("[demo] ", "  ")) for line in printed), printed
        wait_until(
            lambda: asyncio.run(_indexed_rows(empty_database_url)) > 0,
            timeout=60,
            what="the demo's indexer to write rows",
            every=0.2,
        )
        # Realistic amounts (18 decimals), not the tests' edge-of-uint256 first mints.
        assert asyncio.run(_largest_balance(empty_database_url)) < 10**30
        demo.send_signal(signal.SIGTERM)
        assert wait_exit(demo, 30) == 0
    finally:
        # However the test ends, nothing it started outlives it: the demo stops its own
        # anvil and indexer on SIGTERM; those it named are stopped by PID if they remain.
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(10)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: not any(_alive(pid) for pid in pids),
        timeout=10,
        what=f"the demo's anvil and indexer (PIDs {pids}) to exit",
        every=0.1,
    )
