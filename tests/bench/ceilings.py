"""The two ceilings of this machine: what the node can serve and what PostgreSQL can take.

Neither touches the indexer's code. The fetch ceiling asks the node for the whole chain's
logs of the factory and its children, in block ranges of about `target_logs` logs, a few
requests in flight, and parses each answer with orjson; nothing else. The COPY ceiling
writes as many synthetic rows shaped like `nft_transfers` (binary COPY, one transaction
per `chunk` rows) into a copy of that table with all its indexes and constraints; only the
COPY and commit are timed, not making the rows.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson

DEFAULT_CONCURRENCY = 3  # the indexer's AUDIFI_FETCH_CONCURRENCY default
DEFAULT_TARGET_LOGS = 20_000  # the indexer's AUDIFI_BATCH_MAX_LOGS default
COPY_TABLE = "bench_copy_nft_transfers"
_COLUMNS = (
    "chain_id",
    "block_number",
    "block_hash",
    "block_timestamp",
    "tx_hash",
    "log_index",
    "contract_address",
    "token_id",
    "from_address",
    "to_address",
)


@dataclass(frozen=True, slots=True)
class Rate:
    items: int
    seconds: float
    note: str

    @property
    def per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


def span_for(*, events: int, blocks: int, target_logs: int = DEFAULT_TARGET_LOGS) -> int:
    """Blocks per eth_getLogs so that one answer holds about `target_logs` logs."""
    return max(1, round(target_logs * blocks / max(events, 1)))


async def fetch_rate(
    url: str,
    addresses: list[str],
    *,
    from_block: int,
    to_block: int,
    span: int,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Rate:
    """Raw eth_getLogs + orjson.loads over [from_block, to_block]; logs per second."""
    ranges = [(a, min(a + span - 1, to_block)) for a in range(from_block, to_block + 1, span)]
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:

        async def one(a: int, b: int) -> int:
            async with gate:
                return await _get_logs(http, url, addresses, a, b)

        began = time.perf_counter()
        counts = await asyncio.gather(*(one(a, b) for a, b in ranges))
        elapsed = time.perf_counter() - began
    note = f"{len(ranges)} eth_getLogs of {span} blocks, {concurrency} in flight"
    return Rate(sum(counts), elapsed, note)


async def _get_logs(
    http: aiohttp.ClientSession, url: str, addresses: list[str], a: int, b: int
) -> int:
    body = {
        "jsonrpc": "2.0",
        "id": a,
        "method": "eth_getLogs",
        "params": [{"fromBlock": hex(a), "toBlock": hex(b), "address": addresses}],
    }
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
        payload: dict[str, Any] = orjson.loads(await response.read())
    if "error" in payload:
        raise RuntimeError(f"eth_getLogs {a}..{b}: {payload['error']}")
    return len(payload["result"])


async def copy_rate(
    database_url: str, *, rows: int, chunk: int = DEFAULT_TARGET_LOGS, indexed: bool = True
) -> Rate:
    """Binary COPY of `rows` synthetic transfers into a copy of nft_transfers: with all its
    indexes and constraints, or (`indexed=False`, for comparison) with neither."""
    like = "including all" if indexed else "including defaults"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"create table {COPY_TABLE} (like nft_transfers {like})")
        rng = random.Random(rows)
        spent = 0.0
        for start in range(0, rows, chunk):
            records = _transfers(rng, start, min(chunk, rows - start))
            began = time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table(COPY_TABLE, records=records, columns=_COLUMNS)
            spent += time.perf_counter() - began
        stored = await conn.fetchval(f"select count(*) from {COPY_TABLE}")
        await conn.execute(f"drop table {COPY_TABLE}")
    finally:
        await conn.close()
    shape = "PK + 4 indexes" if indexed else "no index"
    note = f"{-(-rows // chunk)} COPY of <= {chunk} rows each, {shape}"
    return Rate(int(stored), spent, note)


def _transfers(rng: random.Random, first: int, n: int) -> list[tuple[Any, ...]]:
    """`n` plausible transfers: ~4,500 per block, 13 contracts, 200 holders."""
    fixed = random.Random(0)
    contracts = [fixed.randbytes(20) for _ in range(13)]
    holders = [fixed.randbytes(20) for _ in range(200)]
    epoch = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(first, first + n):
        block = i // 4500
        out.append(
            (
                31337,
                block,
                block.to_bytes(32, "big"),
                epoch + timedelta(seconds=12 * block),
                rng.randbytes(32),
                i % 4500,
                rng.choice(contracts),
                rng.randrange(1, 2001),
                rng.choice(holders),
                rng.choice(holders),
            )
        )
    return out
