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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from indexer.config import redact_url
from indexer.devchain.anvil import PROJECT_ROOT, free_port, start_anvil
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig
from indexer.migrate import migrate_up

DEMO_DIR = PROJECT_ROOT / ".demo"


@contextmanager
def demo_database() -> Iterator[str]:
    """AUDIFI_DATABASE_URL, or an embedded server that lives as long as the demo."""
    configured = os.environ.get("AUDIFI_DATABASE_URL")
    if configured:
        yield configured
        return
    try:
        from pgserver import get_server  # type: ignore[attr-defined]
    except ImportError:
        sys.exit("no AUDIFI_DATABASE_URL and the embedded server is missing: make install")
    DEMO_DIR.mkdir(exist_ok=True)
    server: Any = get_server(DEMO_DIR / "pgdata", cleanup_mode="stop")
    try:
        # Each demo is a new chain: start from an empty database every time.
        server.psql("drop database if exists audifi_demo;")
        server.psql("create database audifi_demo;")
        yield str(server.get_uri("audifi_demo"))
    finally:
        server.cleanup()


async def _prepare(url: str) -> None:
    """Migrate; refuse a database that already indexed another chain."""
    conn = await asyncpg.connect(url)
    try:
        await migrate_up(conn)
        if await conn.fetchval("select count(*) from indexer_checkpoints"):
            sys.exit(
                "[demo] this database already holds an index (of an earlier demo chain): "
                "point AUDIFI_DATABASE_URL at an empty database"
            )
    finally:
        await conn.close()


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _start_indexer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "indexer", "run"], env=env)


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
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with demo_database() as url, start_anvil(no_mining=True) as anvil:
        asyncio.run(_prepare(url))
        _say(f"anvil pid {anvil.pid} at {anvil.url}")
        with RpcClient(anvil.url) as rpc:
            workload = Workload(rpc, WorkloadConfig(seed=args.seed, masters=4, artists=4))
            summary = workload.run(500)
            port = int(os.environ.get("AUDIFI_METRICS_PORT") or free_port())
            env = dict(
                os.environ,
                AUDIFI_DATABASE_URL=url,
                AUDIFI_RPC_URL=anvil.url,
                AUDIFI_FACTORY_ADDRESS="0x" + summary.factory.hex(),
                AUDIFI_METRICS_PORT=str(port),
            )
            indexer = _start_indexer(env)
            _say(f"indexer pid {indexer.pid}; metrics http://127.0.0.1:{port}/metrics")
            _say(f"database {redact_url(url)}")
            _say(
                "look at the data: AUDIFI_DATABASE_URL='<the database>' "
                f"AUDIFI_RPC_URL={anvil.url} AUDIFI_FACTORY_ADDRESS=0x{summary.factory.hex()} "
                ".venv/bin/audifi-indexer status   (or psql: select * from master_nfts limit 5)"
            )
            _say("simulating activity; Ctrl-C to stop")
            try:
                _simulate(workload, args, stop, indexer)
            finally:
                _stop(indexer)
    _say("stopped")


def _simulate(
    workload: Workload, args: argparse.Namespace, stop: dict[str, bool], indexer: Any
) -> None:
    started = time.monotonic()
    while not stop["now"] and indexer.poll() is None:
        workload.round(args.events_per_round)
        if args.seconds and time.monotonic() - started > args.seconds:
            break
        deadline = time.monotonic() + 1.0
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
