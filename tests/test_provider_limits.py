"""Every eth_getLogs refusal in the providers' catalogue, served by the proxy in front of
a real anvil: the indexer splits the range as the message says and ends with exactly
what a clean backfill stores, and each message's numbers are read right."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from indexer.backfill import backfill
from indexer.limits import parse_limit_error
from indexer.rpc import RpcClient
from indexer.service import open_pipeline
from tests.helpers import pg
from tests.helpers.chain import settings_through
from tests.helpers.chainstate import reference_database, snapshot
from tests.helpers.limits import PROVIDER_LIMIT_ERRORS, LimitError, limit_error
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.proxy import RpcProxy

MAX_RANGE = 3  # blocks: the workload's ~25 blocks need several ranges
MAX_RESULTS = 60  # logs: a block holds up to ~40, so ranges of one or two blocks pass
Snapshot = dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=17, events=450) as chain:
        yield chain


@pytest.fixture(scope="module")
def expected(live: LiveChain, pg_databases: pg.Databases, template_db: str) -> Iterator[Snapshot]:
    with reference_database(live, pg_databases, template_db) as state:
        yield state


def _limits(error: LimitError) -> dict[str, int]:
    """A limit the message can describe: by results when it speaks of results, else by range."""
    if "max_results" in error.fields and "max_range" not in error.fields:
        return {"max_results": MAX_RESULTS}
    return {"max_range": MAX_RANGE}


def _states_ceiling(error: LimitError) -> bool:
    return "max_range" in error.fields


@pytest.mark.parametrize("error", PROVIDER_LIMIT_ERRORS, ids=lambda e: e.provider)
async def test_a_refused_range_is_split_and_nothing_is_missed(
    error: LimitError, database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    head = live.head()
    async with RpcProxy(live.chain.url) as proxy:
        proxy.limit_get_logs(error=error, **_limits(error))
        config = settings_through(
            database_url, live.chain, [proxy.url], getlogs_initial_range=1_000
        )
        async with open_pipeline(config) as p:
            await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)
            ceiling = p.planner.ceiling
    assert proxy.stats.refused > 0, "the limit never refused anything: the test proves nothing"
    if _states_ceiling(error):
        assert ceiling == MAX_RANGE, "a stated ceiling is kept, not grown past"
    assert await snapshot(database_url) == expected


@pytest.mark.parametrize("error", PROVIDER_LIMIT_ERRORS, ids=lambda e: e.provider)
def test_the_message_is_read_with_realistic_numbers(error: LimitError) -> None:
    first, last = 0x64, 0x1387
    raw = error.render((first, last), span=20_001, max_range=10_000, max_results=10_000)
    hint = parse_limit_error(raw["code"], raw["message"], raw.get("data"))
    assert hint is not None, f"not recognised as a limit: {raw['message']!r}"
    if error.suggests_range:
        assert hint.suggested_to == last
    if _states_ceiling(error):
        assert hint.ceiling == 10_000, raw["message"]
    elif "max_results" in error.fields:
        assert hint.ceiling != 10_000, "a result count is not a block ceiling"


async def test_behind_a_rate_limited_plan_the_rate_settles_under_it(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    """A hosted plan's 429s (HTTP 429 above a call rate, each call of a batch counted):
    after the first refusals the indexer paces itself under the limit instead of retrying
    into it, and stores exactly what a clean backfill does."""
    head = live.head()
    async with RpcProxy(live.chain.url) as proxy:
        proxy.hosted(latency_s=0.01, calls_per_second=10)
        proxy.limit_get_logs(max_results=MAX_RESULTS, error=limit_error("alchemy"))
        # Batches of the default size (200) are over the plan's one-second budget, which
        # refuses them however slowly they are sent: once limited, the indexer splits them.
        config = settings_through(database_url, live.chain, [proxy.url])
        async with open_pipeline(config) as p:
            await backfill(p, live.chain.factory_block, head, head=head, concurrency=3)
    stats = proxy.stats
    assert stats.rate_limited > 0, "the plan never refused anything: the test proves nothing"
    first = min(stats.refused_per_s)
    late = sum(n for second, n in stats.refused_per_s.items() if second > first + 3)
    assert max(stats.accepted_per_s) > first + 3, "too short a run to show the rate settle"
    assert late <= 0.05 * stats.calls, dict(stats.refused_per_s)
    assert max(stats.accepted_per_s.values()) <= 10 + 10, "over the plan and its burst"
    assert await snapshot(database_url) == expected


async def test_a_batch_larger_than_the_plan_allows_in_a_second_is_split(live: LiveChain) -> None:
    """A plan of 10 calls/s refuses a request of 60 calls however long it waits: once it
    has said "too many", the calls go in requests no larger than a second's worth, and all
    of them are answered."""
    head = live.head()
    async with RpcProxy(live.chain.url) as proxy, RpcClient([proxy.url], max_retries=8) as rpc:
        proxy.hosted(latency_s=0.0, calls_per_second=10)
        numbers = [n % (head + 1) for n in range(60)]
        headers = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    assert [int(h["number"], 16) for h in headers] == numbers
    assert proxy.stats.rate_limited > 0, "the plan never refused anything: the test proves nothing"
    assert max(proxy.stats.accepted_per_s.values()) <= 10 + 10, "over the plan and its burst"
