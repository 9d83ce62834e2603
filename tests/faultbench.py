"""`python -m tests.faultbench [--events 100k]`: the indexer behind a node that fails,
lags and lies, measured against the same run behind an honest proxy.

Every scenario runs the real CLI (`backfill`, or the `run` daemon catching up) as a
subprocess into a fresh database, through a proxy on a thread of this process in front
of an anvil loaded with the benchmark's cached chain. Reported per scenario: wall time,
its ratio to the honest run of the same driver, whether the tables end equal to the
honest run's (every indexed table, row for row), the oracle's mismatches, the audit's
discrepancies, and what the proxy injected. One run each; timings on a shared 2-core
machine vary by some percent.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tests.bench import chaincache
from tests.bench.__main__ import parse_size
from tests.bench.endtoend import backfill_argv, indexer_env, oracle_mismatches
from tests.bench.procs import INDEXER, Child
from tests.helpers import pg
from tests.helpers.chainstate import snapshot
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.nodes import LoopThread, Tamper
from tests.helpers.proxy import RpcProxy

REPORT = chaincache.CACHE_DIR / "faults.json"
LOG_DIR = chaincache.CACHE_DIR / "logs"
TRANSPORT = tuple(
    f for f in Fault if f not in (Fault.SLOW, Fault.EMPTY_LOGS, Fault.HEAD_JUMP)
)  # every transport and framing fault; EMPTY_LOGS is a lie, measured with the others
FAULTS = FaultSettings(
    retry_after_s=1, hold_s=4.0, rpc_error_code=-32005, rpc_error_message="limit exceeded"
)
LIES = ("empty", "drop_last", "duplicate_apart", "wrong_hash")
# A held request times out (below FAULTS.hold_s); batches of 1,000 logs: a provider-sized
# answer, and enough answers (some 300 for 100k events) for faults and lies to land in.
SETTINGS = {"AUDIFI_RPC_TIMEOUT": "2", "AUDIFI_BATCH_MAX_LOGS": "1000"}
_TIMEOUT_S = 1800.0

Node = RpcProxy | Tamper
Tables = dict[str, list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    driver: str  # "backfill" or "daemon"
    node: Callable[[str], Node]
    audit: bool = False


def _honest(url: str) -> Node:
    return RpcProxy(url)


def _faulty(url: str) -> Node:
    proxy = RpcProxy(url, seed=20, settings=FAULTS)
    proxy.randomize(0.2, TRANSPORT)
    return proxy


def _lagging(url: str) -> Node:
    proxy = RpcProxy(url, seed=21)
    proxy.lagging_items(500, share=0.1)
    return proxy


def _lying(url: str) -> Node:
    node = Tamper(url)
    node.lie(LIES, one_in=10, seed=22)
    return node


SCENARIOS = (
    Scenario("backfill, honest", "backfill", _honest),
    Scenario("backfill, 20% transport faults", "backfill", _faulty),
    Scenario("backfill, replicas lagging per item (10%, 500 blocks)", "backfill", _lagging),
    Scenario("backfill + audit, honest", "backfill", _honest, audit=True),
    Scenario("backfill + audit, lies on 1 in 10 answers", "backfill", _lying, audit=True),
    Scenario("daemon catch-up, honest", "daemon", _honest),
    Scenario("daemon catch-up, 20% transport faults", "daemon", _faulty),
    Scenario("daemon, lies on 1 in 10 answers", "daemon", _lying, audit=True),
)


def _injected(node: Node) -> dict[str, int]:
    if isinstance(node, Tamper):
        return dict(node.fired)
    injected = {fault.value: n for fault, n in node.stats.injected.items()}
    return {**injected, "lagged": node.stats.lagged} if node.stats.lagged else injected


@contextmanager
def _serving(thread: LoopThread, node: Node) -> Iterator[Node]:
    if isinstance(node, Tamper):
        thread.run(node.__aenter__())
    else:
        thread.run(node.start())
    try:
        yield node
    finally:
        if isinstance(node, Tamper):
            thread.run(node.__aexit__(None, None, None))
        else:
            thread.run(node.stop())


async def _count(url: str, query: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(query) or 0)
    finally:
        await conn.close()


def _run_backfill(
    env: dict[str, str], chain: chaincache.CachedChain, log: Path, audit: bool
) -> float:
    argv = backfill_argv(chain)
    if audit:
        argv.remove("--no-audit")
    with Child(argv, env=env, log_path=log) as child:
        code = child.wait(_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"backfill exited {code}: {log.read_bytes()[-2000:].decode()}")
    return child.wall_s


def _run_daemon(env: dict[str, str], url: str, log: Path, done: Callable[[], bool]) -> float:
    with Child([*INDEXER, "run"], env=env, log_path=log) as child:
        deadline = time.perf_counter() + _TIMEOUT_S
        while not done():
            if child.popen.poll() is not None:
                raise RuntimeError(f"daemon exited: {log.read_bytes()[-2000:].decode()}")
            if time.perf_counter() > deadline:
                raise RuntimeError("daemon did not finish in time")
            time.sleep(0.5)
        return child.wall_s


def one(
    scenario: Scenario,
    databases: pg.Databases,
    template: str,
    chain: chaincache.CachedChain,
    anvil_url: str,
    reference: Tables | None,
) -> tuple[dict[str, Any], Tables]:
    """Run the scenario into a fresh database: its result, and the tables it left."""
    thread = LoopThread()
    name = databases.create(template=template)
    url = databases.url(name)
    slug = "".join(c if c.isalnum() else "-" for c in scenario.name)
    log = LOG_DIR / f"faults-{slug}.log"
    try:
        with _serving(thread, scenario.node(anvil_url)) as node:
            env = indexer_env(
                url, node.url, chain, **SETTINGS, AUDIFI_AUDIT=str(scenario.audit).lower()
            )
            if scenario.driver == "backfill":
                wall = _run_backfill(env, chain, log, scenario.audit)
            else:

                def finished() -> bool:
                    at = asyncio.run(
                        _count(url, "select max(block_number) from indexer_checkpoints")
                    )
                    if at < chain.head:
                        return False
                    return reference is None or asyncio.run(snapshot(url)) == reference

                wall = _run_daemon(env, url, log, finished)
            injected = thread.call(lambda: _injected(node))
        tables = asyncio.run(snapshot(url))
        return {
            "scenario": scenario.name,
            "driver": scenario.driver,
            "wall_s": round(wall, 2),
            "exact": None if reference is None else tables == reference,
            "oracle_mismatches": len(oracle_mismatches(url, anvil_url, chain)),
            "discrepancies": asyncio.run(_count(url, "select count(*) from indexer_discrepancies")),
            "injected": injected,
        }, tables
    finally:
        databases.drop(name)
        thread.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="100k")
    parser.add_argument("--seed", type=int, default=7)
    # Sparse by default: many blocks of few events, so that requests (and faults) are many
    # and the daemon has a catch-up to make (it needs 1,000 blocks).
    parser.add_argument("--txs-per-block", type=int, default=2)
    parser.add_argument("--max-events-per-tx", type=int, default=20)
    args = parser.parse_args()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    spec = chaincache.ChainSpec(
        parse_size(args.events), args.seed, args.txs_per_block, args.max_events_per_tx
    )
    chain, _ = chaincache.ensure(spec)
    server = pg.find_server()
    databases = pg.Databases(server.admin_dsn)
    results: list[dict[str, Any]] = []
    try:
        template = databases.create_migrated()
        node = chaincache.start(chain)
        with node:
            reference: Tables | None = None
            for scenario in SCENARIOS:
                result, tables = one(scenario, databases, template, chain, node.url, reference)
                reference = reference or tables
                honest = next(
                    (
                        r
                        for r in results
                        if r["driver"] == scenario.driver and "honest" in r["scenario"]
                    ),
                    None,
                )
                result["ratio_to_honest"] = (
                    round(result["wall_s"] / honest["wall_s"], 2) if honest else 1.0
                )
                results.append(result)
                print(orjson.dumps(result).decode(), flush=True)
        databases.drop(template)
    finally:
        databases.close()
        if server.stop is not None:
            server.stop()
    REPORT.write_bytes(
        orjson.dumps(
            {
                "chain": chain.key,
                "events": chain.events,
                "blocks": chain.blocks,
                "results": results,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"\n{chain.events:,} events in {chain.blocks} blocks")
    for r in results:
        print(
            f"{r['scenario']:<55} {r['wall_s']:>8.1f} s  x{r['ratio_to_honest']:<5} "
            f"exact={r['exact']} oracle={r['oracle_mismatches']} "
            f"discrepancies={r['discrepancies']} injected={sum(r['injected'].values())}"
        )
    print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
