"""The hosted-provider profile: the backfill behind a proxy with a hosted plan's limits.

The proxy (tests/helpers/proxy.py, on a thread of this process) adds LATENCY_S to every
request, refuses eth_getLogs over 10,000 results or 2,000 blocks with Alchemy's message
(which names a range that works), and answers HTTP 429 to calls over CALLS_PER_SECOND
(each call of a batch counts, one second of burst). What those limits allow is the
larger of two floors, for the calls this design must make (one eth_getLogs per 10,000
logs, one header per block):

- the rate floor: calls needed ÷ CALLS_PER_SECOND;
- the latency floor: requests needed (header calls batched by AUDIFI_RPC_BATCH_SIZE) times
  LATENCY_S ÷ the fetch concurrency.

Reported: the backfill's time by its own clock (start-up excluded) and its ratio to the
floor, requests and calls sent, 429s received, and whether the rate settled: the 429s
after the first RAMP_S seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.config import Settings
from tests.bench import endtoend
from tests.bench.chaincache import CachedChain
from tests.helpers import pg
from tests.helpers.limits import limit_error
from tests.helpers.nodes import CountingProxy, proxies_on_a_thread

LATENCY_S = 0.05
MAX_RESULTS = 10_000
MAX_RANGE = 2_000
CALLS_PER_SECOND = 20.0  # low enough that every shape here is bound by requests, not CPU
RAMP_S = 5  # seconds in which the first 429s teach the indexer the rate


@dataclass(frozen=True, slots=True)
class Floor:
    calls: int
    requests: int
    rate_s: float
    latency_s: float

    @property
    def seconds(self) -> float:
        return max(self.rate_s, self.latency_s)


def floor(chain: CachedChain, env: dict[str, str]) -> Floor:
    """The least time the plan's limits allow for this chain (see the module docstring)."""
    defaults = Settings.model_fields
    concurrency = int(env.get("AUDIFI_FETCH_CONCURRENCY", defaults["fetch_concurrency"].default))
    batch = int(env.get("AUDIFI_RPC_BATCH_SIZE", defaults["rpc_batch_size"].default))
    get_logs = max(math.ceil(chain.events / MAX_RESULTS), math.ceil(chain.blocks / MAX_RANGE))
    calls = get_logs + chain.blocks
    requests = get_logs + math.ceil(chain.blocks / batch)
    return Floor(
        calls=calls,
        requests=requests,
        rate_s=calls / CALLS_PER_SECOND,
        latency_s=requests * LATENCY_S / concurrency,
    )


def play_the_plan(proxy: CountingProxy) -> None:
    """Make the proxy answer like the hosted plan (call it on the proxy's loop)."""
    proxy.hosted(latency_s=LATENCY_S, calls_per_second=CALLS_PER_SECOND)
    proxy.limit_get_logs(max_range=MAX_RANGE, max_results=MAX_RESULTS, error=limit_error("alchemy"))


def measure(
    databases: pg.Databases,
    template: str,
    node_url: str,
    node_pid: int,
    chain: CachedChain,
    log_path: Path,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    """One backfill of the whole chain through the hosted profile, into a fresh database."""
    name = databases.create(template=template)
    try:
        url = databases.url(name)
        with proxies_on_a_thread(node_url, kind=CountingProxy) as (thread, (proxy,)):
            assert isinstance(proxy, CountingProxy)

            thread.call(lambda: play_the_plan(proxy))
            env = endtoend.indexer_env(url, proxy.url, chain, **extra_env)
            done = endtoend.run_backfill(env, chain, url, log_path, node_pid=node_pid)
            stats = thread.call(lambda: proxy.stats)
            served = thread.call(lambda: dict(proxy.methods))
            mismatches = endtoend.oracle_mismatches(url, node_url, chain)
    finally:
        databases.drop(name)
    least = floor(chain, env)
    took = done.reported_s or done.wall_s
    late = sum(n for second, n in stats.refused_per_s.items() if second >= RAMP_S)
    return {
        "events": done.events,
        "seconds": round(took, 2),
        "floor_s": round(least.seconds, 2),
        "ratio_to_floor": round(took / least.seconds, 2) if least.seconds else None,
        "floor": {"calls": least.calls, "requests": least.requests},
        "requests": stats.requests,
        "calls": stats.calls,
        "getlogs_refused": stats.refused,
        "rate_limited_requests": stats.rate_limited,
        "calls_refused_after_ramp": late,
        "calls_served_by_method": served,
        "calls_accepted_per_s": dict(sorted(stats.accepted_per_s.items())),
        "peak_rss_mb": round(done.peak_rss_mb),
        "oracle_mismatches": len(mismatches),
        "profile": {
            "latency_s": LATENCY_S,
            "max_results": MAX_RESULTS,
            "max_range": MAX_RANGE,
            "calls_per_second": CALLS_PER_SECOND,
        },
    }
