"""Live-follow latency: the daemon at the head, blocks arriving one at a time.

The daemon (`python -m indexer run`, default poll interval) starts on the backfilled
database and continues from the checkpoint the backfill left at the head, so it follows
instead of re-reading history. A second workload on the same factory then deploys its
own masters and coins and sends one block of a few transfers at a time. Latency is from
the moment the block's receipts are in (the block is mined) to the moment its last
transaction's rows are visible in PostgreSQL (polled every couple of milliseconds). A
random pause of up to one poll interval before each block spreads the blocks over the
daemon's polling phase.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from indexer.config import Settings
from indexer.devchain.anvil import DEFAULT_CHAIN_ID, Anvil
from indexer.devchain.contracts import Deployment
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Kind, Workload, WorkloadConfig
from tests.bench.chaincache import CachedChain
from tests.bench.endtoend import indexer_env
from tests.bench.procs import INDEXER, Child

EVENTS_PER_BLOCK = 4
POLL_DB_S = 0.002
CATCH_UP_TIMEOUT_S = 300.0
BLOCK_TIMEOUT_S = 30.0
# The daemon runs with the default; the benchmark's own environment must not change it.
POLL_INTERVAL_S: float = Settings.model_fields["poll_interval"].default
LIVE_MIX = {Kind.NFT_MINT: 1, Kind.NFT_TRANSFER: 3, Kind.COIN_MINT: 1, Kind.COIN_TRANSFER: 3}
_VISIBLE = """
select exists (select 1 from nft_transfers where chain_id = $1 and tx_hash = $2)
    or exists (select 1 from token_transfers where chain_id = $1 and tx_hash = $2)
"""


@dataclass(frozen=True, slots=True)
class FollowResult:
    latencies_ms: list[float]
    catch_up_s: float  # daemon start to the first block's rows (setup blocks included)
    peak_rss_mb: float
    poll_interval_s: float

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)


def percentile(values: Sequence[float], p: int) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def measure_follow(
    database_url: str,
    node: Anvil,
    chain: CachedChain,
    *,
    blocks: int,
    seed: int,
    log_path: Path,
    extra_env: Mapping[str, str],
) -> FollowResult:
    """Runs the daemon while `blocks` blocks arrive; stops it by PID, also on error."""
    env = indexer_env(database_url, node.url, chain, **extra_env)
    config = WorkloadConfig(seed=seed, mix=LIVE_MIX, max_events_per_tx=3, txs_per_block=8)
    factory = Deployment(chain.factory_bytes, chain.factory_block)
    with RpcClient(node.url) as rpc, Child([*INDEXER, "run"], env=env, log_path=log_path) as daemon:
        workload = Workload(rpc, config, factory=factory)
        catch_up, latencies = asyncio.run(
            _measure(database_url, rpc, workload, daemon, blocks=blocks, seed=seed)
        )
        daemon.stop()
    return FollowResult(
        latencies_ms=latencies,
        catch_up_s=catch_up,
        peak_rss_mb=(daemon.peak_rss_kb or 0) / 1024,
        poll_interval_s=POLL_INTERVAL_S,
    )


async def _measure(
    database_url: str, rpc: RpcClient, workload: Workload, daemon: Child, *, blocks: int, seed: int
) -> tuple[float, list[float]]:
    conn = await asyncpg.connect(database_url)
    try:
        await asyncio.to_thread(workload.setup)
        tx_hash, _ = await asyncio.to_thread(_send_block, rpc, workload)
        async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
            await _visible(conn, tx_hash, daemon)
        catch_up = daemon.wall_s
        rng = random.Random(seed)
        latencies = []
        for _ in range(blocks):
            await asyncio.sleep(rng.uniform(0, POLL_INTERVAL_S))
            tx_hash, mined_at = await asyncio.to_thread(_send_block, rpc, workload)
            async with asyncio.timeout(BLOCK_TIMEOUT_S):
                seen_at = await _visible(conn, tx_hash, daemon)
            latencies.append(round((seen_at - mined_at) * 1000, 2))
        return catch_up, latencies
    finally:
        await conn.close()


def _send_block(rpc: RpcClient, workload: Workload) -> tuple[bytes, float]:
    """Mines one block of a few transfers; its last tx hash and when its receipts were in."""
    summary = workload.round(EVENTS_PER_BLOCK)
    mined_at = time.perf_counter()
    if summary.first_block != summary.last_block:
        raise RuntimeError(f"expected one block, got {summary.first_block}..{summary.last_block}")
    block = rpc.call("eth_getBlockByNumber", [hex(summary.last_block), False])
    return bytes.fromhex(block["transactions"][-1][2:]), mined_at


async def _visible(conn: asyncpg.Connection, tx_hash: bytes, daemon: Child) -> float:
    """When the tx's rows were first seen; raises if the daemon exits first."""
    while not await conn.fetchval(_VISIBLE, DEFAULT_CHAIN_ID, tx_hash):
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        await asyncio.sleep(POLL_DB_S)
    return time.perf_counter()
