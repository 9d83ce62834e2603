"""The indexer core against real anvil and PostgreSQL: the chain is the oracle."""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Iterator

import asyncpg
import pytest

from indexer.backfill import backfill
from indexer.devchain.anvil import start_anvil
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig
from indexer.service import open_pipeline
from tests.helpers.chain import (
    INDEXER,
    Chain,
    indexer_env,
    running_indexer,
    settings_for,
    wait_exit,
)
from tests.helpers.chainstate import mismatches, oracle, snapshot, wait_for_match
from tests.helpers.polling import eventually

EVENTS = 20_000


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    anvil = start_anvil(no_mining=True)
    try:
        with RpcClient(anvil.url) as rpc:
            summary = Workload(rpc, WorkloadConfig(seed=11)).run(EVENTS)
        assert summary.events >= EVENTS
        yield Chain(anvil=anvil, factory=summary.factory, factory_block=summary.factory_block)
    finally:
        anvil.stop()


async def _backfill(database_url: str, chain: Chain, start: int, end: int) -> int:
    async with open_pipeline(settings_for(database_url, chain)) as p:
        head = await p.source.head()
        done = await backfill(p, start, end, head=head, concurrency=3)
        return done.events


async def _head(chain: Chain) -> int:
    with RpcClient(chain.url) as rpc:
        return int(rpc.call("eth_blockNumber"), 16)


async def _raw_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "select (select count(*) from nft_transfers) + (select count(*) from "
                "token_transfers) + (select count(*) from dividend_events) + "
                "(select count(*) from dividend_claims)"
            )
        )
    finally:
        await conn.close()


async def test_backfill_matches_the_chain_and_is_idempotent(
    database_url: str, chain: Chain
) -> None:
    head = await _head(chain)
    written = await _backfill(database_url, chain, chain.factory_block, head)
    assert written >= EVENTS
    assert await mismatches(database_url, oracle(chain.url, chain.factory)) == []
    before = await snapshot(database_url)
    assert await _backfill(database_url, chain, chain.factory_block, head) == 0
    assert await snapshot(database_url) == before


async def test_ranges_in_any_order_and_repeated_converge(database_url: str, chain: Chain) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    head = await _head(chain)
    start = chain.factory_block
    cuts = sorted(rng.sample(range(start + 1, head + 1), k=min(4, head - start)))
    ranges = [(a, b - 1) for a, b in zip([start, *cuts], [*cuts, head + 1], strict=True)]
    ranges += rng.sample(ranges, k=2)  # repeats
    rng.shuffle(ranges)
    for a, b in ranges:
        await _backfill(database_url, chain, a, b)
    assert await mismatches(database_url, oracle(chain.url, chain.factory)) == [], f"seed {seed}"


def test_daemon_indexes_to_the_head_and_stops_on_sigterm(database_url: str, chain: Chain) -> None:
    env = indexer_env(database_url, chain)
    with running_indexer(["run"], env) as daemon:
        _run(wait_for_match(database_url, chain.url, chain.factory, within=120))
        daemon.send_signal(signal.SIGTERM)
        assert wait_exit(daemon, 10) == 0


def test_sigkill_during_backfill_then_restart_ends_at_the_chain(
    database_url: str, chain: Chain
) -> None:
    head = _run(_head(chain))
    args = ["backfill", "--from-block", str(chain.factory_block), "--to-block", str(head)]
    env = indexer_env(database_url, chain, AUDIFI_BATCH_MAX_LOGS="1500")
    rng = random.Random(5)
    killed_mid_run = 0
    for _ in range(4):
        with running_indexer(args, env) as process:
            _run(_wait_rows(database_url, rng.randrange(1, EVENTS), process))
            killed_mid_run += process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(10)
    assert killed_mid_run >= 2, "the kills should land while the backfill runs"
    finished = subprocess.run([*INDEXER, *args], env=env, capture_output=True, timeout=180)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert _run(mismatches(database_url, oracle(chain.url, chain.factory))) == []


async def _wait_rows(url: str, rows: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until at least `rows` raw rows are committed (or the process ended)."""

    async def enough() -> bool:
        return process.poll() is not None or await _raw_rows(url) >= rows

    await eventually(enough, within=60, what=f"{rows} raw rows committed", every=0.02)


def _run(coro):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(coro)
