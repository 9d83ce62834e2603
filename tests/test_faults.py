"""Nodes that fail, lie or lag, between the follower and a real anvil: every fault is
retried, an answer that contradicts itself is never written, and the database ends
exactly where a clean backfill ends. Several URLs: one down, one lagging, one failing
half the time, and traffic goes back to the first once it recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from indexer.errors import Retryable
from indexer.health import Health
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.step import Outcome, Pipeline, follow_step
from tests.helpers import pg
from tests.helpers.chain import following, settings_through
from tests.helpers.chainstate import (
    duplicates,
    mismatches,
    oracle,
    reference,
    reference_database,
    snapshot,
    written,
)
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.nodes import CountingProxy, Tamper
from tests.helpers.polling import eventually
from tests.helpers.proxy import RpcProxy

Snapshot = dict[str, list[tuple[Any, ...]]]
FAST = FaultSettings(retry_after_s=1, slow_s=0.2, hold_s=3.0)
RPC_TIMEOUT = 1.0  # below FAST.hold_s: a held request times out
# Faults after which the answer is still right: nothing to retry.
HARMLESS = {Fault.SLOW, Fault.BATCH_REORDERED, Fault.HEAD_JUMP}


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=29, events=450) as chain:
        yield chain


@pytest.fixture(scope="module")
def expected(live: LiveChain, pg_databases: pg.Databases, template_db: str) -> Iterator[Snapshot]:
    with reference_database(live, pg_databases, template_db) as state:
        yield state


def _retries() -> float:
    total = 0.0
    for family in REGISTRY.collect():
        if family.name in ("audifi_indexer_rpc_retries", "audifi_indexer_step_retries"):
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


async def _follow_to(p: Pipeline, head: int, *, within: float = 60) -> list[Retryable]:
    """Step until the checkpoint is `head` and the follower waits. A step that fails must
    have written nothing: no row and no checkpoint move. Returns the failures."""
    failures: list[Retryable] = []

    async def stepped_to_head() -> bool:
        before = await written(p.store.pool)
        try:
            result = await follow_step(p)
        except Retryable as e:
            assert await written(p.store.pool) == before, f"a failed step wrote something: {e}"
            failures.append(e)
            return False
        # WAITING: a replica behind reported a lower head
        return result.outcome in (Outcome.IDLE, Outcome.WAITING) and before[0] == head

    await eventually(
        stepped_to_head,
        within=within,
        what=lambda: f"the checkpoint at block {head}; failures: {failures[-3:]}",
        every=0,  # each step already waits on the node and the database
    )
    return failures


async def _index_through(
    live: LiveChain, database_url: str, urls: list[str], **extra: Any
) -> list[Retryable]:
    config = settings_through(database_url, live.chain, urls, rpc_timeout=RPC_TIMEOUT, **extra)
    async with open_pipeline(config) as p:
        await ensure_checkpoint(p)
        return await _follow_to(p, live.head())


@pytest.mark.parametrize("fault", list(Fault), ids=lambda f: f.value)
async def test_a_node_fault_is_retried_and_nothing_is_lost(
    fault: Fault, database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    retried = _retries()
    async with RpcProxy(live.chain.url, settings=FAST) as proxy:
        method = "eth_blockNumber" if fault is Fault.HEAD_JUMP else "eth_getLogs"
        proxy.script(fault, times=2, method=method)
        failed_steps = await _index_through(live, database_url, [proxy.url])
    assert proxy.stats.injected[fault] == 2, "the fault never happened: the test proves nothing"
    assert await snapshot(database_url) == expected
    assert await duplicates(database_url) == {}
    if fault not in HARMLESS:
        # Retried by the RPC client (counted in its metric), or refused by the checks and
        # the step run again (the driver counts those).
        assert _retries() > retried or failed_steps, "the fault should have been retried"


@pytest.mark.parametrize(
    "kind",
    [
        "wrong_hash",
        "duplicate",
        "removed",
        "outside",
        "missing_field",
        "bad_hex",
        "topics_not_list",
    ],
)
async def test_a_log_that_cannot_be_parsed_or_contradicts_its_headers_is_never_written(
    kind: str, database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    async with Tamper(live.chain.url) as node:
        node.script(kind, times=2)
        failures = await _index_through(live, database_url, [node.url])
    assert node.fired[kind] == 2
    assert len(failures) == 2, failures
    assert all(type(e).__name__ == "InconsistentResponse" for e in failures), failures
    assert await snapshot(database_url) == expected


async def test_empty_logs_for_a_range_whose_headers_say_otherwise_are_never_written(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    async with RpcProxy(live.chain.url, settings=FAST) as proxy:
        proxy.script(Fault.EMPTY_LOGS, times=3, method="eth_getLogs")
        failures = await _index_through(live, database_url, [proxy.url])
    assert proxy.stats.injected[Fault.EMPTY_LOGS] == 3
    refused = [e for e in failures if "receipts hold logs" in str(e)]
    assert refused, f"an empty answer for a range with logs went through: {failures}"
    assert await snapshot(database_url) == expected


@pytest.mark.parametrize("behind", [1, 3])
async def test_a_load_balancer_flapping_between_a_node_and_a_laggard(
    behind: int, database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    async with RpcProxy(live.chain.url, settings=FAST) as proxy:
        proxy.flapping_head(behind, every=1)
        failures = await _index_through(live, database_url, [proxy.url], getlogs_initial_range=1)
    assert all(type(e).__name__ in ("NotReady", "InconsistentResponse") for e in failures)
    assert await snapshot(database_url) == expected


async def test_a_lagging_node_is_waited_for_then_followed(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    """One URL, 5 blocks behind: indexing stops short of the head without writing what
    the node cannot vouch for, and reaches the head once the node does."""
    head = live.head()
    async with RpcProxy(live.chain.url, settings=FAST) as proxy:
        proxy.lagging(5)
        config = settings_through(database_url, live.chain, [proxy.url], rpc_timeout=RPC_TIMEOUT)
        async with open_pipeline(config) as p:
            await ensure_checkpoint(p)
            await _follow_to(p, head - 5)
            assert (await follow_step(p)).outcome is Outcome.IDLE
            assert (await written(database_url))[0] == head - 5
            proxy.lagging(0)
            await _follow_to(p, head)
    assert await snapshot(database_url) == expected


# --- several URLs ---------------------------------------------------------------------------


async def test_several_urls_one_down_one_lagging_one_failing_then_fail_back(
    database_url: str, pg_databases: pg.Databases, template_db: str
) -> None:
    """A is down (every connection reset), B lags 3 blocks, C fails half its requests.
    The follower keeps up with live blocks through C; once A recovers, the traffic
    returns to A, the first URL. The end state is the chain's, and a clean backfill's."""
    with sparse_chain(seed=31, events=300) as live:
        async with (
            CountingProxy(live.chain.url, seed=1, settings=FAST) as a,
            CountingProxy(live.chain.url, seed=2, settings=FAST) as b,
            CountingProxy(live.chain.url, seed=3, settings=FAST) as c,
        ):
            a.randomize(1.0, [Fault.RESET])
            b.lagging(3)
            c.randomize(0.5, [Fault.HTTP_500, Fault.RPC_ERROR, Fault.INVALID_JSON, Fault.RESET])
            config = settings_through(
                database_url,
                live.chain,
                [a.url, b.url, c.url],
                rpc_timeout=RPC_TIMEOUT,
                poll_interval=0.05,
            )
            async with open_pipeline(config) as p, _following(p) as stop:
                await _activity(live, rounds=10)
                await _until_matches(database_url, live)
                assert c.methods["eth_getLogs"] > 0, "the failing URL carried the indexing"
                assert a.stats.forwarded == 0

                a.randomize(0)  # A recovers
                recovered = time.monotonic()
                while a.methods["eth_getLogs"] == 0:  # new blocks, until A indexes them
                    assert time.monotonic() - recovered < 30, "no fail-back to the first URL"
                    await _activity(live, rounds=1)
                fail_back_s = time.monotonic() - recovered
                b_logs, c_logs = b.methods["eth_getLogs"], c.methods["eth_getLogs"]
                await _activity(live, rounds=10)
                await _until_matches(database_url, live)
                stop.set()
            assert b.methods["eth_getLogs"] == b_logs, "a lagging URL gets no range past its head"
            assert c.methods["eth_getLogs"] == c_logs, "traffic stays on the first URL"
        head = live.head()
        assert await duplicates(database_url) == {}
        name = pg_databases.create(template=template_db)
        try:
            assert await snapshot(database_url) == await reference(
                pg_databases.url(name), live.chain, head
            )
        finally:
            pg_databases.drop(name)
    assert fail_back_s < 30


class _following:
    """The follow driver as a task of this loop; its stop event is the context's value."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> asyncio.Event:
        await ensure_checkpoint(self.p)
        health = Health(self.p.store, max_lag_blocks=10)
        self.task = asyncio.create_task(
            following(self.p, poll_interval=0.05, stop=self.stop, health=health)
        )
        return self.stop

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 15)


async def _activity(live: LiveChain, *, rounds: int) -> None:
    for _ in range(rounds):
        await asyncio.to_thread(live.workload.round, 20)
        await asyncio.sleep(0.1)  # live pace: blocks arrive while the follower polls


async def _until_matches(url: str, live: LiveChain, within: float = 60) -> None:
    head = live.head()
    seen: list[int | None] = [None]

    async def at_head() -> bool:
        seen[0], _ = await written(url)
        return seen[0] == head

    await eventually(
        at_head,
        within=within,
        what=lambda: f"checkpoint {seen[0]} to reach head {head}",
        every=0.05,
    )
    problems = await mismatches(url, oracle(live.chain.url, live.chain.factory))
    assert problems == [], problems[:5]
