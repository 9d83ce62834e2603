"""`make demo`: a local chain with live AudiFi activity, indexed into PostgreSQL.

Starts anvil, deploys the contracts, keeps simulating platform activity, and
runs the indexer daemon against it. The database is AUDIFI_DATABASE_URL when
set, otherwise an embedded PostgreSQL (pgserver) kept under .demo/pgdata.
Ctrl-C or SIGTERM stops everything this command started, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from indexer import logs
from indexer.devchain.anvil import PROJECT_ROOT, free_port, start_anvil
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig
from indexer.migrate import migrate_up
from indexer.tables import TABLE_NAMES

DEMO_DIR = PROJECT_ROOT / ".demo"
REPORT_EVERY = 10.0


@contextmanager
def demo_database() -> Iterator[str]:
    """AUDIFI_DATABASE_URL, or an embedded server that lives as long as the demo."""
    configured = os.environ.get("AUDIFI_DATABASE_URL")
    if configured:
        yield configured
        return
    DEMO_DIR.mkdir(exist_ok=True)
    with warnings.catch_warnings():  # its platform-directory notices are not the demo's
        warnings.simplefilter("ignore")
        try:
            from pgserver import get_server  # type: ignore[attr-defined]
        except ImportError:
            sys.exit("no AUDIFI_DATABASE_URL and the embedded server is missing: make install")
        server: Any = get_server(DEMO_DIR / "pgdata", cleanup_mode="stop")
    try:
        # Each demo is a new chain: start from an empty database every time, and say so.
        _say("embedded PostgreSQL under .demo/pgdata: database audifi_demo made anew")
        server.psql("drop database if exists audifi_demo;")
        server.psql("create database audifi_demo;")
        yield str(server.get_uri("audifi_demo"))
    finally:
        server.cleanup()


async def _prepare(url: str) -> None:
    """Migrate; refuse a database that already indexed another chain."""
    conn = await asyncpg.connect(url)
    try:
        applied = await migrate_up(conn)
        _say(f"database migrated ({len(applied)} migrations applied)")
        if await conn.fetchval("select count(*) from indexer_checkpoints"):
            sys.exit(
                "[demo] this database already holds an index (of an earlier demo chain): "
                "point AUDIFI_DATABASE_URL at an empty database"
            )
    finally:
        await conn.close()


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _start_indexer(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The daemon, its log (one JSON line per block) in a file, so that the hints stay."""
    DEMO_DIR.mkdir(exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "indexer", "run"],
            env={**env, "AUDIFI_LOG_FORMAT": "json"},
            stdout=log,
            stderr=log,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    parser.add_argument("--events-per-round", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logs.configure(level="warning")  # this process says what it does in [demo] lines
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with demo_database() as url, start_anvil(no_mining=True) as anvil:
        asyncio.run(_prepare(url))
        _say(f"anvil pid {anvil.pid} at {anvil.url}")
        with RpcClient(anvil.url) as rpc:
            config = WorkloadConfig(seed=args.seed, masters=4, artists=4, huge_first_mint=False)
            workload = Workload(rpc, config)
            summary = workload.run(500)
            port = int(os.environ.get("AUDIFI_METRICS_PORT") or free_port())
            env = dict(
                os.environ,
                AUDIFI_DATABASE_URL=url,
                AUDIFI_RPC_URL=anvil.url,
                AUDIFI_FACTORY_ADDRESS="0x" + summary.factory.hex(),
                AUDIFI_METRICS_PORT=str(port),
            )
            log_path = DEMO_DIR / "indexer.log"
            indexer = _start_indexer(env, log_path)
            _say(f"indexer pid {indexer.pid}; metrics http://127.0.0.1:{port}/metrics")
            _say(f"indexer log (JSON lines): tail -f {log_path}")
            # The embedded server's URL holds no password; one of the caller's may, and it
            # is in the caller's environment already.
            configured = bool(os.environ.get("AUDIFI_DATABASE_URL"))
            database = "$AUDIFI_DATABASE_URL" if configured else url
            settings = "" if configured else f'AUDIFI_DATABASE_URL="{url}" '
            _say("look at the data (paste into another terminal):")
            print(
                f'  psql "{database}" -c \'select holder_address, balance from token_holders '
                "order by balance desc limit 5'",
                flush=True,
            )
            print(
                f"  {settings}AUDIFI_RPC_URL={anvil.url} "
                f"AUDIFI_FACTORY_ADDRESS=0x{summary.factory.hex()} .venv/bin/audifi-indexer status",
                flush=True,
            )
            _say("simulating activity; Ctrl-C to stop")
            try:
                _simulate(workload, args, stop, indexer, url)
            finally:
                _stop(indexer)
    _say("stopped")


def _simulate(
    workload: Workload, args: argparse.Namespace, stop: dict[str, bool], indexer: Any, url: str
) -> None:
    """A workload round a second; a line on what is indexed every REPORT_EVERY seconds."""
    started = reported = time.monotonic()
    while not stop["now"] and indexer.poll() is None:
        workload.round(args.events_per_round)
        if time.monotonic() - reported >= REPORT_EVERY:
            reported = time.monotonic()
            block, rows = asyncio.run(_indexed(url))
            _say(f"indexed up to block {block}: {rows:,} events")
        if args.seconds and time.monotonic() - started > args.seconds:
            break
        deadline = time.monotonic() + 1.0
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(0.05)
    if indexer.poll() is not None:
        _say(f"the indexer exited with code {indexer.returncode}: see {DEMO_DIR / 'indexer.log'}")


async def _indexed(url: str) -> tuple[int | None, int]:
    conn = await asyncpg.connect(url)
    try:
        block = await conn.fetchval("select max(block_number) from indexer_checkpoints")
        rows = sum([await conn.fetchval(f"select count(*) from {t}") for t in TABLE_NAMES])
    finally:
        await conn.close()
    return block, int(rows)


if __name__ == "__main__":
    main()
