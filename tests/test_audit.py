"""The coverage ledger and the auditor, against a real anvil behind a node that lies on
eth_getLogs (HTTP 200, wrong content): what the checks at fetch time cannot catch (an
answer with logs left out) is found by the audit, healed in one transaction, counted
and announced, so that a backfill and a daemon end equal to the chain."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from indexer.audit import AuditReport, ReceiptsReader, audit_range
from indexer.backfill import backfill
from indexer.chain import Checkpoint
from indexer.config import Settings
from indexer.errors import ConfigError, IndexMoved
from indexer.ledger import Discrepancy
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.step import Decoded, commit, prepare
from indexer.store.notify import CHANNEL
from tests.helpers import pg
from tests.helpers.chain import (
    indexer_env,
    run_cli,
    running_indexer,
    settings_through,
    wait_exit,
)
from tests.helpers.chainstate import (
    mismatches,
    oracle,
    reference,
    reference_database,
    snapshot,
)
from tests.helpers.events import checked
from tests.helpers.faults import Fault, FaultSettings
from tests.helpers.livechain import Activity, LiveChain, sparse_chain
from tests.helpers.nodes import LoopThread, Tamper
from tests.helpers.polling import eventually, wait_until
from tests.helpers.proxy import RpcProxy

Snapshot = dict[str, list[tuple[Any, ...]]]
# Lies the checks at fetch time may miss: an empty answer is caught only where the
# blooms of the headers fetched with it say it should hold logs; nothing at fetch time
# can tell that logs were left out of an answer that holds others.
UNSEEN = ("empty", "drop_last")
# Lies the checks at fetch time catch (the answer is retried, never written).
SEEN = ("duplicate_apart", "wrong_hash")


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=141, events=1_500) as chain:
        yield chain


@pytest.fixture(scope="module")
def expected(live: LiveChain, pg_databases: pg.Databases, template_db: str) -> Iterator[Snapshot]:
    with reference_database(live, pg_databases, template_db) as state:
        yield state


async def _backfill_and_audit(settings: Settings, live: LiveChain) -> tuple[AuditReport, int]:
    """Backfill the whole chain, then audit it through the node's receipts."""
    head = live.head()
    async with open_pipeline(settings) as p:
        await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)
        report = await audit_range(p, ReceiptsReader(p.source), live.chain.factory_block, head)
    return report, head


async def _discrepancies(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("select * from indexer_discrepancies order by id")
    finally:
        await conn.close()


@pytest.mark.parametrize("lies", [("empty",), ("drop_last",), UNSEEN + SEEN])
async def test_a_backfill_behind_a_lying_node_ends_equal_to_the_chain_once_audited(
    database_url: str, live: LiveChain, expected: Snapshot, lies: tuple[str, ...]
) -> None:
    async with Tamper(live.chain.url) as node:
        node.lie(lies, one_in=10, seed=7)
        # A short reorg window: most ranges are fetched with the headers of their ends
        # only, whose blooms cannot vouch for an empty answer in between.
        # Small batches: many answers to lie in.
        settings = settings_through(
            database_url, live.chain, [node.url], reorg_window=4, batch_max_logs=60
        )
        report, head = await _backfill_and_audit(settings, live)
    assert sum(node.fired.values()) > 2, node.fired
    if node.fired["drop_last"]:  # nothing at fetch time can tell a log is missing
        assert report.found, "answers left logs out, and the audit found none"
    assert await snapshot(database_url) == expected
    assert await mismatches(database_url, oracle(live.chain.url, live.chain.factory)) == []
    recorded = await _discrepancies(database_url)
    assert [r["block_number"] for r in recorded] == [d.block_number for d in report.found]
    assert {r["kind"] for r in recorded} <= {"missing", "different"}
    assert all(r["rows_added"] > 0 and r["source"] == "receipts" for r in recorded)
    assert report.blocks == head - live.chain.factory_block + 1


async def test_an_honest_node_gives_the_audit_nothing_to_find(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    settings = settings_through(database_url, live.chain)
    report, head = await _backfill_and_audit(settings, live)
    assert report.found == [] and report.reorging == 0
    assert report.blocks == head - live.chain.factory_block + 1
    assert report.calls == 2 * report.blocks  # a header and the receipts per block
    assert await _discrepancies(database_url) == []
    assert await snapshot(database_url) == expected


async def test_without_healing_the_audit_reports_and_writes_nothing(
    database_url: str, live: LiveChain
) -> None:
    async with Tamper(live.chain.url) as node:
        node.lie(("drop_last",), one_in=3, seed=3)
        settings = settings_through(database_url, live.chain, [node.url])
        head = live.head()
        async with open_pipeline(settings) as p:
            await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)
            before = await snapshot(database_url)
            reader = ReceiptsReader(p.source)
            found = await audit_range(p, reader, live.chain.factory_block, head, heal=False)
            assert found.found and all(d.kind == "missing" for d in found.found)
            assert await snapshot(database_url) == before
            healed = await audit_range(p, reader, live.chain.factory_block, head)
            again = await audit_range(p, reader, live.chain.factory_block, head)
    assert [d.block_number for d in healed.found] == [d.block_number for d in found.found]
    assert again.found == []
    assert await mismatches(database_url, oracle(live.chain.url, live.chain.factory)) == []


async def test_a_heal_is_announced_on_notify_in_its_transaction(
    database_url: str, live: LiveChain
) -> None:
    heard: list[dict[str, Any]] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(CHANNEL, lambda *args: heard.append(checked(args[3])))
    try:
        async with Tamper(live.chain.url) as node:
            # The first answer with logs is discovery's (the factory's only); the second
            # is the first range indexed.
            node.script("drop_last", times=2)
            settings = settings_through(database_url, live.chain, [node.url])
            report, _ = await _backfill_and_audit(settings, live)
        await asyncio.sleep(0)  # let the listener's callbacks run
    finally:
        await listener.close()
    assert report.found
    notices = [n for n in heard if n["type"] == "indexer.discrepancy"]
    assert [(n["blockNumber"], n["kind"], n["ledgerCount"], n["chainCount"]) for n in notices] == [
        (
            d.block_number,
            d.kind,
            d.ledger.log_count if d.ledger else 0,
            d.chain.log_count if d.chain else 0,
        )
        for d in report.found
    ]
    # A heal replaces the block: what it held goes, what the chain holds comes.
    assert all(n["rowsRemoved"] == n["ledgerCount"] for n in notices)
    assert all(n["rowsAdded"] == n["chainCount"] for n in notices)


async def _coverage(url: str) -> list[tuple[int, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select from_block, to_block from indexer_coverage order by 1")
    finally:
        await conn.close()
    return [(r[0], r[1]) for r in rows]


async def test_coverage_merges_ranges_committed_in_any_order(
    database_url: str, live: LiveChain
) -> None:
    first = live.chain.factory_block
    settings = settings_through(database_url, live.chain)
    async with open_pipeline(settings) as p:
        for start, end in [(first + 40, first + 59), (first, first + 9), (first + 20, first + 29)]:
            await backfill(p, start, end, head=live.head(), concurrency=1)
        assert await _coverage(database_url) == [
            (first, first + 9),
            (first + 20, first + 29),
            (first + 40, first + 59),
        ]
        await backfill(p, first + 5, first + 45, head=live.head(), concurrency=1)
        assert await _coverage(database_url) == [(first, first + 59)]
        report = await audit_range(p, ReceiptsReader(p.source), 0, first + 100)
    assert report.blocks == 60 and report.found == []


def test_the_daemon_behind_a_lying_node_heals_what_it_committed(
    database_url: str, pg_databases: pg.Databases, template_db: str, tmp_path: Any
) -> None:
    """Catch-up and live blocks through a node that lies on 1 in 5 answers: the tip pass
    of the audit heals each block soon after it commits, and the daemon ends holding what
    a clean backfill holds, with each discrepancy recorded and logged."""
    thread = LoopThread()
    log = tmp_path / "daemon.log"
    with sparse_chain(seed=142, events=800) as own:
        node = Tamper(own.chain.url)
        try:
            thread.run(node.__aenter__())
            thread.call(lambda: node.lie(UNSEEN + SEEN, one_in=5, seed=11))
            env = indexer_env(
                database_url,
                own.chain,
                AUDIFI_RPC_URL=node.url,
                AUDIFI_START_BLOCK=str(own.chain.factory_block),
                AUDIFI_REORG_WINDOW="16",
                AUDIFI_BATCH_MAX_LOGS="40",  # many small answers to lie in
            )
            with running_indexer(["run"], env, log_path=str(log)) as daemon:
                with Activity(own, every=0.3, events=40) as activity:
                    wait_until(lambda: activity.rounds >= 15, timeout=60, what="15 rounds")
                clean = pg_databases.create(template=template_db)
                try:
                    expected = asyncio.run(
                        reference(pg_databases.url(clean), own.chain, own.head())
                    )
                finally:
                    pg_databases.drop(clean)

                async def healed() -> bool:
                    return await snapshot(database_url) == expected

                asyncio.run(
                    eventually(
                        healed, within=60, what="the daemon's tables to equal a clean backfill's"
                    )
                )
                assert daemon.poll() is None, log.read_text()[-2000:]
            assert wait_exit(daemon, 15, log=log) == 0
            fired = thread.call(lambda: dict(node.fired))
        finally:
            thread.run(node.__aexit__(None, None, None))
            thread.close()
    assert sum(fired.get(kind, 0) for kind in UNSEEN) > 0, fired
    recorded = asyncio.run(_discrepancies(database_url))
    assert recorded, "lies went unseen at fetch time, and the audit healed nothing"
    logged = [line for line in log.read_text().splitlines() if "audit_discrepancy" in line]
    assert len(logged) == len(recorded)


def test_audit_and_verify_against_report_with_exit_3_and_heal_on_demand(
    database_url: str, live: LiveChain
) -> None:
    """An index built through a node that left logs out: `verify --against` another
    provider and `audit --no-heal` list the blocks and exit 3 without writing; `audit`
    heals them; after it, both find nothing (exit 0)."""

    async def index_through_a_liar() -> None:
        async with Tamper(live.chain.url) as node:
            node.lie(("drop_last",), one_in=3, seed=5)
            settings = settings_through(database_url, live.chain, [node.url], batch_max_logs=60)
            head = live.head()
            async with open_pipeline(settings) as p:
                await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)
            assert node.fired["drop_last"] > 0

    asyncio.run(index_through_a_liar())
    span = ["--from-block", str(live.chain.factory_block), "--to-block", str(live.head())]
    before = asyncio.run(snapshot(database_url))

    against = run_cli(database_url, live.chain, "verify", *span, "--against", live.chain.url)
    assert against.returncode == 3, against.stderr
    assert "log(s), the other provider" in against.stdout
    assert "block(s) differ" in against.stdout.splitlines()[-1]
    report_only = run_cli(database_url, live.chain, "audit", *span, "--no-heal")
    assert report_only.returncode == 3, report_only.stderr
    assert asyncio.run(snapshot(database_url)) == before
    assert asyncio.run(_discrepancies(database_url)) == []

    healed = run_cli(database_url, live.chain, "audit", *span)
    assert healed.returncode == 0, healed.stderr
    assert asyncio.run(_discrepancies(database_url))
    for args in (["verify", *span, "--against", live.chain.url], ["audit", *span, "--no-heal"]):
        again = run_cli(database_url, live.chain, *args)
        assert again.returncode == 0, (args, again.stdout, again.stderr)
    assert asyncio.run(mismatches(database_url, oracle(live.chain.url, live.chain.factory))) == []


async def test_a_node_without_block_receipts_is_a_setting_to_fix_named_in_one_line(
    database_url: str, live: LiveChain
) -> None:
    refuses = FaultSettings(rpc_error_code=-32601, rpc_error_message="method not found")
    async with RpcProxy(live.chain.url, settings=refuses) as proxy:
        proxy.script(Fault.RPC_ERROR, times=1_000, method="eth_getBlockReceipts")
        settings = settings_through(database_url, live.chain, [proxy.url])
        head = live.head()
        async with open_pipeline(settings) as p:
            await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)
            with pytest.raises(ConfigError, match="set AUDIFI_AUDIT_RPC_URL"):
                await audit_range(p, ReceiptsReader(p.source), live.chain.factory_block, head)


async def test_a_contract_the_node_hid_is_healed_with_every_log_it_emitted(
    database_url: str, live: LiveChain, expected: Snapshot
) -> None:
    """The node hides one master (its deployment and every log of its NFT and
    distributor): the index never knew it. Auditing only the first blocks heals the
    deployment, the master's logs in the same block, and every committed block above."""
    master = live.workload.masters[0]
    head = live.head()
    async with Tamper(live.chain.url) as node:
        node.hide({master.nft, master.distributor})
        settings = settings_through(database_url, live.chain, [node.url])
        async with open_pipeline(settings) as p:
            await backfill(p, live.chain.factory_block, head, head=head, concurrency=2)
    assert node.fired["hide"] > 0
    assert await snapshot(database_url) != expected
    async with open_pipeline(settings_through(database_url, live.chain)) as p:
        first = live.chain.factory_block
        report = await audit_range(p, ReceiptsReader(p.source), first, first + 2)
    assert len(report.found) > 1 and report.blocks > 3
    assert await snapshot(database_url) == expected


async def test_a_heal_is_refused_when_the_index_holds_the_block_on_another_branch(
    database_url: str, live: LiveChain
) -> None:
    head = live.head()
    async with open_pipeline(settings_through(database_url, live.chain)) as p:
        await ensure_checkpoint(p)  # so that the batches move it and keep the reorg window
        await backfill(p, live.chain.factory_block, head, head=head, concurrency=1)
        number = head - 1
        (entry,) = (await p.store.ledger(number, number)).values()
        header = (await p.source.headers([number]))[number]
        assert header is not None
        other_branch = Discrepancy(number, entry, None, b"\x99" * 32, "receipts")
        prepared = prepare(Decoded(number, number, {number: header}, []), p.store.chain_id)
        before = await snapshot(database_url)
        with pytest.raises(IndexMoved, match="another branch"):
            await commit(p, prepared, head=head, expected=None, durable=True, heal=other_branch)
        assert await snapshot(database_url) == before


async def test_a_rewind_during_a_deep_audit_turn_keeps_the_rewound_blocks_unaudited(
    database_url: str, live: LiveChain
) -> None:
    head = live.head()
    async with open_pipeline(settings_through(database_url, live.chain)) as p:
        await ensure_checkpoint(p)
        await backfill(p, live.chain.factory_block, head, head=head, concurrency=1)
        await p.store.mark_audited(head - 20, was=await p.store.audit_position())
        read = await p.store.audit_position()  # a turn starts here, audits up to `head`...
        fork = head - 10
        header = (await p.source.headers([fork]))[fork]
        assert header is not None
        await p.store.rewind(Checkpoint(fork, header.hash), old_head=None)  # ...meanwhile
        await p.store.mark_audited(head, was=read)  # ...and would store `head`
        after = await p.store.audit_position()
    assert (read.audited_to, after.audited_to) == (head - 20, head - 20)
    assert after.cuts == read.cuts + 1
