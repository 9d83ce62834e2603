"""`python -m tests.bench.fanout [--shapes sparse,production] [--events N] [--shards 1,2,4]`:
how a backfill's time falls when it is split over N shard processes, each behind its own
hosted-provider proxy (tests/bench/hosted.py: 50 ms a request, getLogs capped at 10,000
results and 2,000 blocks, HTTP 429 over 20 calls/s, per client, as providers limit per
key). Every N backfills the whole chain into a fresh database, the N shards
(`backfill --shard I/N`) running at once; reported: the wall time from the first start
to the last exit, the slowest shard, requests and calls summed over the shards, the
floor the plan allows (its calls spread over N clients), and the oracle check."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from typing import Any

from tests.bench import chaincache, endtoend, hosted
from tests.bench.chaincache import CACHE_DIR, CachedChain, ChainSpec
from tests.bench.procs import Child
from tests.bench.run import migrated_template
from tests.bench.shapes import SHAPES
from tests.helpers import pg
from tests.helpers.nodes import CountingProxy, proxies_on_a_thread

# Many blocks with a few events each: the history a request-bound backfill walks.
SPARSE = ChainSpec(events=0, seed=0, txs_per_block=2, max_events_per_tx=20)
_TIMEOUT_S = 1_800.0


def shards_argv(chain: CachedChain, index: int, count: int) -> list[str]:
    return [*endtoend.backfill_argv(chain), "--shard", f"{index}/{count}"]


def measure(
    databases: pg.Databases, template: str, node_url: str, chain: CachedChain, count: int
) -> dict[str, Any]:
    name = databases.create(template=template)
    try:
        url = databases.url(name)
        with proxies_on_a_thread(node_url, count, kind=CountingProxy) as (thread, proxies):
            counting = [p for p in proxies if isinstance(p, CountingProxy)]
            for proxy in counting:
                thread.call(partial(hosted.play_the_plan, proxy))
            began = time.perf_counter()
            with ExitStack() as stack:
                children = [
                    stack.enter_context(
                        Child(
                            shards_argv(chain, i, count),
                            env=endtoend.indexer_env(url, proxy.url, chain),
                            log_path=CACHE_DIR / "logs" / f"fanout-{count}-{i}.log",
                        )
                    )
                    for i, proxy in enumerate(proxies)
                ]
                codes = [child.wait(_TIMEOUT_S) for child in children]
            wall = time.perf_counter() - began
            stats = [thread.call(partial(getattr, proxy, "stats")) for proxy in counting]
        if any(codes):
            raise RuntimeError(f"a shard failed: exit codes {codes} (logs in {CACHE_DIR / 'logs'})")
        mismatches = endtoend.oracle_mismatches(url, node_url, chain)
    finally:
        databases.drop(name)
    single = hosted.floor(chain, endtoend.indexer_env("", "", chain))
    floor_s = max(single.rate_s, single.latency_s) / count
    return {
        "shards": count,
        "wall_s": round(wall, 2),
        "slowest_shard_s": round(max(child.wall_s for child in children), 2),
        "floor_s": round(floor_s, 2),
        "ratio_to_floor": round(wall / floor_s, 2),
        "requests": sum(s.requests for s in stats),
        "calls": sum(s.calls for s in stats),
        "rate_limited_requests": sum(s.rate_limited for s in stats),
        "oracle_mismatches": len(mismatches),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.fanout", description=__doc__)
    parser.add_argument("--shapes", default="sparse,production")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    (CACHE_DIR / "logs").mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {}
    with migrated_template() as (databases, template):
        for shape in options.shapes.split(","):
            base = SPARSE if shape == "sparse" else SHAPES[shape].spec
            spec = replace(base, events=options.events, seed=options.seed)
            chain, _ = chaincache.ensure(spec)
            print(f"{shape}: {chain.events:,} events in {chain.blocks:,} blocks", flush=True)
            with chaincache.start(chain) as node:
                for count in map(int, options.shards.split(",")):
                    row = measure(databases, template, node.url, chain, count)
                    results.setdefault(shape, []).append(row)
                    print(json.dumps(row), flush=True)
    (CACHE_DIR / "fanout.json").write_text(json.dumps(results, indent=2))
    for shape, rows in results.items():
        one = rows[0]["wall_s"]
        speedups = ", ".join(f"N={r['shards']}: {one / r['wall_s']:.2f}x" for r in rows)
        print(f"{shape}: {speedups}")


if __name__ == "__main__":
    main()
