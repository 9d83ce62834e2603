"""Surviving a node that fails a fifth of all requests, rate-limits single blocks, and
sits behind a load balancer whose replicas lag per batch item: a backfill and a
daemon's catch-up end exactly where a clean backfill ends. Timings are the benchmark's
(`python -m tests.faultbench`); here: exactness, and the work the faults cost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from indexer import rpc
from indexer.backfill import backfill
from indexer.errors import NotReady, RangeTooLarge, RpcUnavailable
from indexer.health import Health
from indexer.pacing import WAIT_FOR_BLOCK, Backoff
from indexer.service import ensure_checkpoint, open_pipeline
from tests.helpers import pg
from tests.helpers.chain import following, settings_through
from tests.helpers.chainstate import reference_database, snapshot
from tests.helpers.faults import Fault, FaultSettings, JsonObj
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.polling import eventually
from tests.helpers.proxy import RpcProxy

Snapshot = dict[str, list[tuple[Any, ...]]]
# Every transport fault a provider or load balancer shows, and Infura's -32005.
TRANSPORT = (
    Fault.HTTP_429,
    Fault.HTTP_429_NO_RETRY_AFTER,
    Fault.HTTP_500,
    Fault.HTTP_502,
    Fault.HTTP_503,
    Fault.RESET,
    Fault.READ_TIMEOUT,
    Fault.TRUNCATED,
    Fault.INVALID_JSON,
    Fault.BATCH_MISSING,
    Fault.BATCH_REORDERED,
    Fault.RPC_ERROR,
    Fault.WRONG_ID,
)
FAULTS = FaultSettings(
    retry_after_s=1, hold_s=2.0, rpc_error_code=-32005, rpc_error_message="limit exceeded"
)
FAST = {"rpc_timeout": 1.0, "batch_max_logs": 50}  # many small requests to fail


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=314, events=2_500) as chain:
        chain.mine(1_200)  # far behind: the daemon catches up before it steps
        yield chain


@pytest.fixture(scope="module")
def expected(live: LiveChain, pg_databases: pg.Databases, template_db: str) -> Iterator[Snapshot]:
    with reference_database(live, pg_databases, template_db) as state:
        yield state


class FactoryCounting(RpcProxy):
    """Counts the eth_getLogs calls for the factory's logs alone (child discovery's)."""

    def __init__(self, upstream: str, factory: bytes, **kwargs: Any) -> None:
        super().__init__(upstream, **kwargs)
        self.factory = "0x" + factory.hex()
        self.discovery_calls = 0

    async def _exchange(self, items: list[JsonObj], lag: int, plan: Any) -> Any:
        for item in items:
            params = item.get("params") or [{}]
            if item.get("method") == "eth_getLogs" and params[0].get("address") == [self.factory]:
                self.discovery_calls += 1
        return await super()._exchange(items, lag, plan)


def _retries(reason: str) -> float:
    for family in REGISTRY.collect():
        if family.name == "audifi_indexer_rpc_retries":
            return sum(
                s.value
                for s in family.samples
                if s.labels.get("reason") == reason and s.name.endswith("_total")
            )
    return 0.0


async def _backfill_through(url: str, live: LiveChain, proxy: RpcProxy, **extra: Any) -> None:
    settings = settings_through(url, live.chain, [proxy.url], **{**FAST, **extra})
    head = live.head()
    async with open_pipeline(settings) as p:
        await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)


async def test_a_backfill_survives_a_fifth_of_requests_failing(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    async with RpcProxy(live.chain.url, seed=5, settings=FAULTS) as proxy:
        proxy.randomize(0.2, TRANSPORT)
        await _backfill_through(database_url, live, proxy)
        assert sum(proxy.stats.injected.values()) > 15, proxy.stats.injected
    assert await snapshot(database_url) == expected


async def test_discovery_resumes_after_an_error_instead_of_starting_over(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    """Without retries in the client, every fault reaches the driver: discovery must go
    on from the block it reached, not from the factory's deployment block."""
    async with FactoryCounting(live.chain.url, live.chain.factory) as clean:
        await _backfill_through(database_url, live, clean)
    async with FactoryCounting(
        live.chain.url, live.chain.factory, seed=9, settings=FAULTS
    ) as faulty:
        faulty.randomize(0.2, TRANSPORT)
        await _backfill_through(database_url, live, faulty, rpc_max_retries=0)
    assert await snapshot(database_url) == expected
    # Each fault costs at most its request again (and a shrunken range while it regrows).
    assert faulty.discovery_calls <= 2 * clean.discovery_calls + 10, (
        clean.discovery_calls,
        faulty.discovery_calls,
    )


async def test_a_daemon_catches_up_through_a_fifth_of_requests_failing(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    head = live.head()
    async with RpcProxy(live.chain.url, seed=6, settings=FAULTS) as proxy:
        proxy.randomize(0.2, TRANSPORT)
        settings = settings_through(database_url, live.chain, [proxy.url], **FAST)
        async with open_pipeline(settings) as p:
            await ensure_checkpoint(p)
            stop = asyncio.Event()
            health = Health(p.store, max_lag_blocks=0)
            task = asyncio.create_task(following(p, poll_interval=0.05, stop=stop, health=health))

            async def at_head() -> bool:
                checkpoint = await p.store.checkpoint()
                return checkpoint is not None and checkpoint.number == head

            try:
                await eventually(at_head, within=120, what=f"the checkpoint at {head}", every=0.2)
            finally:
                stop.set()
                await task
        assert sum(proxy.stats.injected.values()) > 15, proxy.stats.injected
    assert await snapshot(database_url) == expected


async def test_replicas_lagging_per_batch_item_are_asked_again_item_by_item(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    before = _retries("lagging_item")
    async with RpcProxy(live.chain.url, seed=7) as proxy:
        proxy.lagging_items(1_000, share=0.05)  # most of the chain is above its head
        await _backfill_through(database_url, live, proxy)
    assert _retries("lagging_item") > before
    assert await snapshot(database_url) == expected


def _logs_filter(first: int, last: int) -> list[JsonObj]:
    return [{"fromBlock": hex(first), "toBlock": hex(last), "address": []}]


def _refusal(code: int, message: str) -> JsonObj:
    return {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


def test_a_limit_refusal_of_one_block_is_a_fault_to_retry_not_a_range_to_shrink() -> None:
    refusal = _refusal(-32005, "limit exceeded")
    with pytest.raises(RpcUnavailable, match="refused for one block"):
        rpc._result(refusal, "eth_getLogs", _logs_filter(131, 131))
    with pytest.raises(RangeTooLarge):
        rpc._result(refusal, "eth_getLogs", _logs_filter(131, 140))


def test_a_block_beyond_the_head_stays_a_block_not_there_yet_for_one_block() -> None:
    refusal = _refusal(-32000, "invalid block range params: extends beyond current head")
    with pytest.raises(RangeTooLarge, match="beyond current head"):
        rpc._result(refusal, "eth_getLogs", _logs_filter(131, 131))


@pytest.mark.parametrize(
    "message",
    [
        "project ID request rate exceeded",
        "Your app has exceeded its compute units per second capacity",
        "Too Many Requests",
        "daily request count exceeded, request rate limited",
    ],
)
def test_a_rate_limit_is_retried_whatever_the_method(message: str) -> None:
    for method, params in (("eth_getLogs", _logs_filter(1, 900)), ("eth_call", [])):
        with pytest.raises(RpcUnavailable):
            rpc._result(_refusal(-32005, message), method, params)


def test_waiting_for_a_block_a_replica_lacks_stays_short() -> None:
    backoff = Backoff()
    waits = [backoff.next(NotReady("node has no block 9 yet")) for _ in range(30)]
    assert max(waits) <= WAIT_FOR_BLOCK.cap
    assert Backoff().next(RpcUnavailable("down")) <= 0.2


def _counter(name: str) -> float:
    for family in REGISTRY.collect():
        if family.name == name:
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


async def test_a_request_the_node_holds_is_hedged_not_waited_out(live: LiveChain) -> None:
    """The node holds one request far past the usual latency: a second copy answers, and
    the first is abandoned. Without hedging the call would succeed too, but only after
    the hold, as a retry: so no retry may be counted, and one hedge must be."""
    async with RpcProxy(live.chain.url, settings=FaultSettings(hold_s=30.0)) as proxy:
        proxy.script(Fault.READ_TIMEOUT, times=1)
        hedged, retried = _counter("audifi_indexer_rpc_hedged"), _retries("RpcUnavailable")
        async with rpc.RpcClient([proxy.url], timeout=60.0) as client:
            head = await client.call("eth_blockNumber", [])
        assert int(head, 16) == live.head()
        assert proxy.stats.injected[Fault.READ_TIMEOUT] == 1
        assert _counter("audifi_indexer_rpc_hedged") == hedged + 1
        assert _retries("RpcUnavailable") == retried
