"""Several `run` replicas on one database: one leader, fenced standbys, takeover on
SIGKILL and SIGSTOP, and an index that refuses settings naming another factory or chain.
Real PostgreSQL, real anvil, the daemon as subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from indexer.backfill import backfill
from indexer.derive import StagedRows
from indexer.devchain import contracts as c
from indexer.devchain.anvil import dev_accounts
from indexer.devchain.rpc import RpcClient, RpcError
from indexer.devchain.workload import WorkloadConfig
from indexer.errors import LeaseLost
from indexer.service import ensure_checkpoint, open_pipeline
from indexer.step import Outcome, Pipeline, follow_step
from indexer.store.control import Fence, acquire_lease, check_fence, release_lease, renew_lease
from indexer.store.state import Batch
from indexer.store.write import lock_chain
from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, settings_for, wait_exit
from tests.helpers.chainstate import (
    checkpoint,
    ends_equal_to_the_chain_and_a_fresh_index,
    mismatches,
    oracle,
)
from tests.helpers.livechain import Activity, LiveChain, live_chain
from tests.helpers.ops import json_lines
from tests.helpers.polling import eventually, wait_until

LEASE = 3.0  # seconds: short, so that takeovers are quick to test


@pytest.fixture
def live() -> Iterator[LiveChain]:
    with live_chain(
        WorkloadConfig(seed=41, masters=3, artists=3, synthetic_holders=20), 1500
    ) as chain:
        yield chain


def _replica_env(database_url: str, live: LiveChain, name: str) -> dict[str, str]:
    return indexer_env(
        database_url,
        live.chain,
        AUDIFI_LEASE_SECONDS=str(LEASE),
        AUDIFI_REPLICA_NAME=name,
        AUDIFI_POLL_INTERVAL="0.05",
    )


@contextmanager
def replicas(
    database_url: str, live: LiveChain, tmp_path: Path, count: int
) -> Iterator[list[tuple[subprocess.Popen[bytes], Path]]]:
    """`count` daemons on one database, each logging JSON to its own file."""
    with ExitStack() as stack:
        started = []
        for i in range(count):
            log = tmp_path / f"replica-{i}.log"
            env = _replica_env(database_url, live, f"replica-{i}")
            process = stack.enter_context(running_indexer(["run"], env, log_path=str(log)))
            started.append((process, log))
        yield started


def _roles(log: Path) -> list[str]:
    return [r["role"] for r in json_lines(log.read_text()) if r.get("event") == "role"]


def _leader_and_standby(
    running: list[tuple[subprocess.Popen[bytes], Path]],
) -> tuple[int, Path]:
    """Once both of two replicas have a role: the leader's index and the standby's log."""
    wait_until(lambda: all(_roles(log) for _, log in running), timeout=30, what="both roles")
    leader = _leader(running)
    return leader, running[1 - leader][1]


def _leader(running: list[tuple[subprocess.Popen[bytes], Path]]) -> int:
    """The index of the one replica whose last role is leader (fails unless exactly one)."""
    leading = [i for i, (_, log) in enumerate(running) if _roles(log)[-1:] == ["leader"]]
    assert len(leading) == 1, [(_roles(log), i) for i, (_, log) in enumerate(running)]
    return leading[0]


def _rounds(activity: Activity, rounds: int, *, with_reorg: bool = False) -> None:
    """Wait until the activity has made `rounds` rounds (and a reorg, if asked)."""
    wait_until(
        lambda: activity.rounds >= rounds and (activity.reorgs or not with_reorg),
        timeout=60,
        what=f"{rounds} rounds of activity" + (" with a reorg" if with_reorg else ""),
    )


def _deploy_and_use_children(live: LiveChain) -> None:
    """A master and a coin deployed mid-stream, then minted and moved, so that a replica
    with a stale registry would lose their events."""
    _use_children(live, *_deploy_children(live))


def _deploy_children(live: LiveChain) -> tuple[c.Master, c.ArtistCoinRef]:
    admin = dev_accounts(live.rpc)[0]
    factory = live.chain.factory
    receipts = c.transact(
        live.rpc,
        [
            c.deploy_master_tx(admin, factory, uuid.uuid4().bytes, 50),
            c.deploy_artist_coin_tx(admin, factory, uuid.uuid4().bytes, "MID", 18),
        ],
    )
    (master,) = c.masters_deployed(receipts)
    (coin,) = c.artist_coins_deployed(receipts)
    return master, coin


def _use_children(live: LiveChain, master: c.Master, coin: c.ArtistCoinRef) -> None:
    admin, *holders = dev_accounts(live.rpc)[:3]
    c.transact(
        live.rpc,
        [
            c.nft_mint_batch_tx(admin, master.nft, holders[0], 4),
            c.coin_mint_batch_tx(admin, coin.token, holders, [10**18, 5]),
        ],
    )


@pytest.mark.parametrize("count", [2, 3])
def test_replicas_follow_through_activity_children_and_reorgs_with_one_leader(
    count: int,
    database_url: str,
    live: LiveChain,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    with replicas(database_url, live, tmp_path, count) as running:
        wait_until(lambda: any(_roles(log) for _, log in running), timeout=30, what="a role")
        for seed in (count, count + 10):
            with Activity(live, every=0.3, events=40, reorg_every=4, seed=seed) as activity:
                _rounds(activity, 5, with_reorg=True)
            _deploy_and_use_children(live)  # between rounds: the workload's connection is ours
        ends_equal_to_the_chain_and_a_fresh_index(database_url, live, pg_databases, template_db)
        _leader(running)
        assert sum(_roles(log).count("leader") for _, log in running) == 1
    for _, log in running:  # SIGTERM: every replica stops cleanly
        assert '"fatal"' not in log.read_text()


def test_a_standby_takes_over_within_the_lease_when_the_leader_is_killed(
    database_url: str,
    live: LiveChain,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    with replicas(database_url, live, tmp_path, 2) as running:
        leader, standby_log = _leader_and_standby(running)
        with Activity(live, every=0.3, events=40, seed=5) as activity:
            _rounds(activity, 2)
            running[leader][0].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait_until(
                lambda: _roles(standby_log)[-1:] == ["leader"],
                timeout=LEASE * 3,
                what="the standby to take over",
            )
            took = time.monotonic() - killed
        _deploy_and_use_children(live)
        print(f"takeover after SIGKILL: {took:.2f} s (lease {LEASE} s)")
        assert took <= 2 * LEASE + 3.0, took  # expiry + a polling round, loose: shared CPUs
        ends_equal_to_the_chain_and_a_fresh_index(database_url, live, pg_databases, template_db)


def test_a_leader_paused_past_its_lease_steps_down_when_it_resumes(
    database_url: str,
    live: LiveChain,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    with replicas(database_url, live, tmp_path, 2) as running:
        leader, other_log = _leader_and_standby(running)
        paused, paused_log = running[leader]
        with Activity(live, every=0.3, events=40, seed=6) as activity:
            paused.send_signal(signal.SIGSTOP)
            try:
                wait_until(
                    lambda: _roles(other_log)[-1:] == ["leader"],
                    timeout=LEASE * 3,
                    what="a takeover from the paused leader",
                )
                _rounds(activity, activity.rounds + 2)  # the new leader writes meanwhile
            finally:
                paused.send_signal(signal.SIGCONT)
            wait_until(
                lambda: _roles(paused_log)[-1:] == ["standby"],
                timeout=LEASE * 3,
                what="the resumed old leader to stand by",
            )
        _deploy_and_use_children(live)
        events = [r.get("event") for r in json_lines(paused_log.read_text())]
        assert "lease_lost" in events
        ends_equal_to_the_chain_and_a_fresh_index(database_url, live, pg_databases, template_db)
        assert _leader(running) == 1 - leader


async def test_a_backfill_committed_ahead_of_a_daemon_with_confirmations_loses_nothing(
    database_url: str, live: LiveChain
) -> None:
    """The daemon stays AUDIFI_CONFIRMATIONS blocks behind. A backfill of those blocks,
    which deploy a master and a coin, commits right after the checkpoint and so moves it
    past the daemon's target. The daemon then continues from there: it must follow the
    children the backfill committed (a registry kept in the daemon's memory would not
    know them, and would lose their later events)."""
    confirmations = 3
    settings = settings_for(
        database_url,
        live.chain,
        confirmations=confirmations,
        start_block=live.chain.factory_block,
    )
    async with open_pipeline(settings) as daemon, open_pipeline(settings) as backfiller:
        await ensure_checkpoint(daemon)
        await _idle_behind_the_head(daemon, confirmations)
        master, coin = _deploy_children(live)
        _use_children(live, master, coin)
        head, before = live.head(), await daemon.store.checkpoint()
        assert before is not None and before.number < master.block <= head
        await backfill(backfiller, before.number + 1, head, head=head, concurrency=2)
        moved = await daemon.store.checkpoint()
        assert moved is not None and moved.number == head, "the backfill moved the checkpoint"
        _use_children(live, master, coin)  # events the daemon fetches itself
        live.mine(confirmations)
        await _idle_behind_the_head(daemon, confirmations)
    problems = await mismatches(database_url, oracle(live.chain.url, live.chain.factory))
    assert problems == [], problems[:10]


async def _idle_behind_the_head(p: Pipeline, confirmations: int) -> None:
    """Step the follower until it is idle exactly `confirmations` blocks behind the head."""

    async def idle() -> bool:
        result = await follow_step(p)
        return result.outcome is Outcome.IDLE and (
            result.checkpoint is not None
            and result.checkpoint.number == result.head - confirmations
        )

    await eventually(idle, within=30, what=f"the follower idle {confirmations} blocks behind")


async def test_a_commit_with_a_taken_over_lease_is_refused_by_the_fence(
    database_url: str, live: LiveChain
) -> None:
    async with open_pipeline(settings_for(database_url, live.chain)) as p:
        pool, chain_id = p.store.pool, p.store.chain_id
        old = await acquire_lease(pool, chain_id, "old", 1.0)
        assert old is not None
        assert await acquire_lease(pool, chain_id, "new", 1.0) is None  # not expired yet
        new = await _taken_over(pool, chain_id, "new")
        assert new.epoch == old.epoch + 1
        with pytest.raises(LeaseLost, match="taken over"):
            await p.store.commit(await _empty_batch(p, old))
        assert not await renew_lease(pool, chain_id, old, 30.0)
        await p.store.commit(await _empty_batch(p, new))
        await release_lease(pool, chain_id, new)


async def test_a_new_leader_ends_the_transaction_a_paused_old_one_holds_open(
    database_url: str, live: LiveChain
) -> None:
    """An old leader paused inside a batch holds the writer lock: the takeover ends its
    transaction, so the new leader writes at once instead of waiting minutes for
    PostgreSQL to drop the idle session."""
    async with open_pipeline(settings_for(database_url, live.chain)) as p:
        pool, chain_id = p.store.pool, p.store.chain_id
        old = await acquire_lease(pool, chain_id, "old", 1.0)
        assert old is not None
        paused = await asyncpg.connect(database_url)
        try:
            await paused.execute("begin")
            await check_fence(paused, chain_id, old)  # how a leader's batch starts
            await lock_chain(paused, chain_id, durable=True)
            pid = paused.get_server_pid()
            new = await _taken_over(pool, chain_id, "new")
            await eventually(
                lambda: _gone(pool, pid), within=10, what="the old leader's session to end"
            )
            ended = (  # what a killed session's next statement raises, as store/db.py maps it
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,
                OSError,
            )
            with pytest.raises(ended):
                await paused.execute("commit")
            await asyncio.wait_for(p.store.commit(await _empty_batch(p, new)), timeout=10)
        finally:
            paused.terminate()


async def _taken_over(pool: asyncpg.Pool, chain_id: int, holder: str) -> Fence:
    """Poll until `holder` takes the lease (the previous one expires)."""
    return await eventually(
        lambda: acquire_lease(pool, chain_id, holder, 30.0),
        within=10,
        what=f"{holder} to take the lease over",
    )


async def _gone(pool: asyncpg.Pool, pid: int) -> bool:
    return not await pool.fetchval("select count(*) from pg_stat_activity where pid = $1", pid)


async def _empty_batch(p: Pipeline, fence: Fence) -> Batch:
    """A batch of the head block with no rows, carrying `fence`."""
    head = await p.source.head()
    header = (await p.source.headers([head]))[head]
    assert header is not None
    return Batch(head, head, StagedRows.empty(), {head: header}, 0, True, None, fence)


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INDEXER, *args], env=env, capture_output=True, text=True, timeout=120)


async def _counts(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            "rows": await conn.fetchval("select count(*) from token_transfers"),
            "identity": [tuple(r) for r in await conn.fetch("select * from indexer_identity")],
            "checkpoints": await conn.fetchval("select count(*) from indexer_checkpoints"),
        }
    finally:
        await conn.close()


def test_another_factory_or_chain_is_refused_and_nothing_is_written(
    database_url: str, live: LiveChain, pg_databases: pg.Databases
) -> None:
    env = indexer_env(database_url, live.chain)
    head = str(live.head())
    done = _run_cli(
        ["backfill", "--from-block", str(live.chain.factory_block), "--to-block", head], env
    )
    assert done.returncode == 0, done.stderr
    before = pg_databases.run(_counts(database_url))
    assert before["identity"][0][1] == live.chain.factory
    coin = live.workload.coins[0].token  # a contract, but not the factory
    wrong = {**env, "AUDIFI_FACTORY_ADDRESS": "0x" + coin.hex()}
    for command in (["backfill", "--from-block", "1", "--to-block", head], ["run"], ["status"]):
        refused = _run_cli(command, wrong)
        assert refused.returncode == 2, (command, refused.stderr)
        assert (
            "0x" + coin.hex() in refused.stderr
            and "0x" + live.chain.factory.hex() in refused.stderr
        )
    refused = _run_cli(["status"], {**env, "AUDIFI_CHAIN_ID": "999"})
    assert refused.returncode == 2 and "999" in refused.stderr, refused.stderr
    refused = _run_cli(["run"], {**env, "AUDIFI_START_BLOCK": str(live.chain.factory_block + 1)})
    assert refused.returncode == 2 and "AUDIFI_START_BLOCK" in refused.stderr, refused.stderr
    assert pg_databases.run(_counts(database_url)) == before


def test_status_and_run_on_an_existing_index_need_no_history(
    database_url: str, live: LiveChain, tmp_path: Path
) -> None:
    """A backfill-only index records its identity; then `status` and `run` work against a
    node that refuses old state (every eth_getCode below the head), with no START_BLOCK."""
    env = indexer_env(database_url, live.chain)
    head = live.head()
    done = _run_cli(
        ["backfill", "--from-block", str(live.chain.factory_block), "--to-block", str(head)], env
    )
    assert done.returncode == 0, done.stderr
    # The backfill started the index, so it created the checkpoint and moved it along.
    assert asyncio.run(checkpoint(database_url)) == (head, live.block_hash(head))
    with _no_history_proxy(live.chain.url) as url:
        pruned = {**env, "AUDIFI_RPC_URL": url}
        status = _run_cli(["status", "--json"], pruned)
        assert status.returncode == 0, status.stderr
        log = tmp_path / "run.log"
        with running_indexer(["run"], pruned, log_path=str(log)) as process:
            wait_until(
                lambda: any(r.get("event") == "started" for r in json_lines(log.read_text())),
                timeout=30,
                what="the daemon to start",
            )
            assert process.poll() is None, log.read_text()
            process.send_signal(signal.SIGTERM)
            assert wait_exit(process, 20) == 0, log.read_text()[-3000:]


@contextmanager
def _no_history_proxy(upstream: str) -> Iterator[str]:
    """A node without history in front of anvil: eth_getCode and eth_call below the head
    answer as a pruned node does ("missing trie node"); everything else passes through."""

    def answer(item: dict[str, Any], head: int) -> dict[str, Any] | None:
        if item.get("method") in ("eth_getCode", "eth_call"):
            block = item["params"][-1]
            if block not in ("latest", "pending") and int(block, 16) < head:
                message = f"missing trie node (state at block {int(block, 16)} is pruned)"
                return {
                    "jsonrpc": "2.0",
                    "id": item["id"],
                    "error": {"code": -32000, "message": message},
                }
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            items = body if isinstance(body, list) else [body]
            with RpcClient(upstream) as rpc:
                head = int(rpc.call("eth_blockNumber"), 16)
            refused = {i["id"]: a for i in items if (a := answer(i, head)) is not None}
            passed = [i for i in items if i["id"] not in refused]
            answers: dict[Any, Any] = dict(refused)
            if passed:
                request = urllib.request.Request(
                    upstream, json.dumps(passed).encode(), {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    answers.update({a["id"]: a for a in json.loads(response.read())})
            out = [answers[i["id"]] for i in items]
            data = json.dumps(out if isinstance(body, list) else out[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_no_history_proxy_refuses_old_state(live: LiveChain) -> None:
    """The proxy above really is a node without history: the deployment search fails."""
    with _no_history_proxy(live.chain.url) as url, RpcClient(url) as rpc:
        old = hex(live.chain.factory_block)
        with pytest.raises(RpcError, match="missing trie node"):
            rpc.call("eth_getCode", ["0x" + live.chain.factory.hex(), old])
        assert rpc.call("eth_getCode", ["0x" + live.chain.factory.hex(), "latest"]) != "0x"
