"""The real thing: `python -m indexer backfill` as a subprocess into a fresh database.

events/s is the raw event rows the backfill wrote divided by the subprocess's wall time
(interpreter start and imports included). Peak RSS is the process's own high-water mark.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from indexer.tables import QUARANTINE, TABLE_NAMES
from tests.bench.chaincache import CachedChain
from tests.bench.procs import INDEXER, Child, cpu_seconds, postgres_cpu_seconds
from tests.helpers.chainstate import mismatches, oracle

# Every table that gets one row per chain event (the quarantine holds none here).
RAW_TABLES = tuple(t for t in TABLE_NAMES if t != QUARANTINE.name)
_BACKFILL_TIMEOUT_S = 3600.0
_SPY_FLUSH_S = 60.0


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds spent during the backfill, by process."""

    indexer: float
    postgres: float
    node: float


@dataclass(frozen=True, slots=True)
class BackfillResult:
    events: int  # raw rows in the database afterwards
    blocks: int
    wall_s: float
    peak_rss_mb: float
    reported_s: float | None  # the indexer's own backfill_done elapsed_s, if it logged one
    rss_series: list[tuple[float, float]]  # (s since start, RSS MB), about once a second
    cpu: Cpu
    http_requests: int | None  # round trips to the node, as the indexer counted them
    rpc_calls: int | None  # JSON-RPC calls (a batch of k counts k)

    def cpu_us_per_event(self) -> dict[str, float]:
        per = 1e6 / max(1, self.events)
        parts = {"indexer": self.cpu.indexer, "postgres": self.cpu.postgres, "node": self.cpu.node}
        out = {k: round(v * per, 1) for k, v in parts.items()}
        return out | {"total": round(sum(parts.values()) * per, 1)}

    def per_1000_events(self, count: int | None) -> float | None:
        return None if count is None else round(1000 * count / max(1, self.events), 2)

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def steady_rss_mb(self) -> float | None:
        """Median RSS over the second half of the run: flat memory shows as steady ~ peak."""
        half = [mb for t, mb in self.rss_series if t >= self.wall_s / 2]
        return round(statistics.median(half), 1) if half else None


def indexer_env(
    database_url: str, rpc_url: str, chain: CachedChain, **extra: str
) -> dict[str, str]:
    """This environment without any AUDIFI_* of the caller's, plus the indexer's settings.

    AUDIFI_START_BLOCK is the factory's block unless `extra` says otherwise: without it
    the indexer binary-searches eth_getCode over history, and a node restored from a state
    dump (like a non-archive node) has no state for old blocks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIFI_")}
    env.update(
        AUDIFI_DATABASE_URL=database_url,
        AUDIFI_RPC_URL=rpc_url,
        AUDIFI_FACTORY_ADDRESS=chain.factory,
        AUDIFI_START_BLOCK=str(chain.factory_block),
        AUDIFI_METRICS_PORT="0",
        AUDIFI_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def backfill_argv(chain: CachedChain, command: str = "backfill") -> list[str]:
    """The whole chain, indexed (the audit is measured on its own: `audit_argv`)."""
    extra = ["--no-audit"] if command == "backfill" else []
    return [
        *INDEXER,
        command,
        "--from-block",
        str(chain.factory_block),
        "--to-block",
        str(chain.head),
        *extra,
    ]


@dataclass(frozen=True, slots=True)
class AuditResult:
    blocks: int
    discrepancies: int
    rpc_calls: int
    wall_s: float
    peak_rss_mb: float


def run_audit(env: dict[str, str], chain: CachedChain, log_path: Path) -> AuditResult:
    """`audifi-indexer audit` over the chain an honest backfill indexed: what it costs."""
    with Child(backfill_argv(chain, "audit"), env=env, log_path=log_path) as child:
        code = child.wait(_BACKFILL_TIMEOUT_S)
    if code != 0:
        tail = log_path.read_bytes()[-3000:].decode(errors="replace")
        raise RuntimeError(f"audit exited with {code}; {log_path}:\n{tail}")
    done = _logged(log_path, b'"audit_done"') or {}
    return AuditResult(
        blocks=int(done.get("blocks", 0)),
        discrepancies=int(done.get("discrepancies", -1)),
        rpc_calls=int(done.get("rpc_calls", 0)),
        wall_s=child.wall_s,
        peak_rss_mb=(child.peak_rss_kb or 0) / 1024,
    )


def _logged(log_path: Path, event: bytes) -> dict[str, Any] | None:
    """The last JSON log line of `event`."""
    for line in reversed(log_path.read_bytes().splitlines()):
        if event in line:
            try:
                found = orjson.loads(line)
            except orjson.JSONDecodeError:
                return None
            return found if isinstance(found, dict) else None
    return None


def run_backfill(
    env: dict[str, str],
    chain: CachedChain,
    database_url: str,
    log_path: Path,
    *,
    node_pid: int,
    attach: Callable[[Child], Child] | None = None,
) -> BackfillResult:
    """Runs the backfill to its end (with `attach(child)` beside it, if given) and measures,
    with the CPU the database server and the node (`node_pid`) spent meanwhile.

    Raises with the log's tail if it failed; both processes are stopped on any way out."""
    argv = backfill_argv(chain)
    postgres_before, node_before = postgres_cpu_seconds(), cpu_seconds(node_pid)
    with (
        Child(argv, env=env, log_path=log_path) as child,
        attach(child) if attach else nullcontext() as spy,
    ):
        code = child.wait(_BACKFILL_TIMEOUT_S)
        cpu = Cpu(
            indexer=child.cpu_s or 0.0,
            postgres=postgres_cpu_seconds() - postgres_before,
            node=cpu_seconds(node_pid) - node_before,
        )
        if spy is not None:
            spy.wait(_SPY_FLUSH_S)
    if code != 0:
        tail = log_path.read_bytes()[-3000:].decode(errors="replace")
        raise RuntimeError(f"backfill exited with {code}; {log_path}:\n{tail}")
    done = _logged(log_path, b'"backfill_done"') or {}
    return BackfillResult(
        events=asyncio.run(raw_rows(database_url)),
        blocks=chain.blocks,
        wall_s=child.wall_s,
        peak_rss_mb=(child.peak_rss_kb or 0) / 1024,
        reported_s=_number(done, "elapsed_s"),
        rss_series=child.rss_series,
        cpu=cpu,
        http_requests=_whole(done, "http_requests"),
        rpc_calls=_whole(done, "rpc_calls"),
    )


def _number(logged: dict[str, Any], key: str) -> float | None:
    try:
        return float(logged[key])
    except (KeyError, TypeError, ValueError):
        return None


def _whole(logged: dict[str, Any], key: str) -> int | None:
    value = _number(logged, key)
    return None if value is None else int(value)


async def raw_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        total = 0
        for table in RAW_TABLES:
            total += int(await conn.fetchval(f"select count(*) from {table}"))
        return total
    finally:
        await conn.close()


def oracle_mismatches(database_url: str, rpc_url: str, chain: CachedChain) -> list[str]:
    """tests/helpers/chainstate's check: owners, balances, claim totals, supplies vs the chain."""
    state = oracle(rpc_url, chain.factory_bytes, from_block=chain.factory_block)
    return asyncio.run(mismatches(database_url, state))
