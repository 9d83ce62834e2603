"""Several chains in one database: one daemon per chain, all writing the same AudiFi
schema at once, each through its own activity and reorgs, and a third chain indexed by
a backfill meanwhile.

Chains A and B have their factory, and so every child contract, at the same addresses
(one deployer, same nonces): the worst case for a statement that forgets `chain_id`.
Chain C has a factory of its own. Each chain's rows must equal its own oracle and a
fresh backfill of it alone; NOTIFY payloads, the change log, `status`, the metrics and
the per-chain dashboards must name the chain. Real PostgreSQL, real anvils, the
indexers as subprocesses."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from indexer.devchain.oracle import ChainState
from indexer.devchain.workload import WorkloadConfig
from indexer.store.notify import CHANNEL
from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, wait_exit
from tests.helpers.chainstate import (
    checkpoint,
    ends_equal_to_the_chain_and_a_fresh_index,
    oracle,
)
from tests.helpers.events import checked
from tests.helpers.livechain import Activity, LiveChain, live_chain
from tests.helpers.nodes import LoopThread
from tests.helpers.ops import get, json_lines, parse_metrics
from tests.helpers.polling import wait_until

CHAIN_A, CHAIN_B, CHAIN_C = 31337, 421614, 8453
ZERO = bytes(20)


@pytest.fixture
def chains() -> Iterator[dict[int, LiveChain]]:
    def config(seed: int) -> WorkloadConfig:
        return WorkloadConfig(
            seed=seed, masters=3, artists=3, txs_per_block=3, max_events_per_tx=30
        )

    with ExitStack() as stack:
        made = {
            CHAIN_A: stack.enter_context(live_chain(config(71), 1_200, chain_id=CHAIN_A)),
            CHAIN_B: stack.enter_context(live_chain(config(72), 1_200, chain_id=CHAIN_B)),
            CHAIN_C: stack.enter_context(
                live_chain(config(73), 1_200, chain_id=CHAIN_C, deployer=1)
            ),
        }
        yield made


class Listener:
    """Every NOTIFY payload on the events channel, collected on a thread of its own."""

    def __init__(self, database_url: str) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._loop = LoopThread()
        self._conn: asyncpg.Connection = self._loop.run(asyncpg.connect(database_url))
        self._loop.run(self._conn.add_listener(CHANNEL, self._received))

    def _received(self, *args: object) -> None:
        self.payloads.append(checked(str(args[3])))

    def close(self) -> None:
        self._loop.run(self._conn.close())
        self._loop.close()


def _daemon_env(database_url: str, live: LiveChain, chain_id: int) -> dict[str, str]:
    """A follower Deployment of one chain: AUDIFI_CHAIN_ID names the chain it must find."""
    return indexer_env(
        database_url, live.chain, AUDIFI_CHAIN_ID=str(chain_id), AUDIFI_POLL_INTERVAL="0.05"
    )


def test_three_chains_in_one_database_stay_apart(
    chains: dict[int, LiveChain],
    database_url: str,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    a, b, c = chains[CHAIN_A], chains[CHAIN_B], chains[CHAIN_C]
    assert a.chain.factory == b.chain.factory != c.chain.factory
    listener = Listener(database_url)

    def indexed(chain_id: int) -> Callable[[int], None]:
        """Before a reorg: wait until the daemon has indexed the blocks it will orphan."""

        def wait(head: int) -> None:
            wait_until(
                lambda: (at := asyncio.run(checkpoint(database_url, chain_id))) and at[0] >= head,
                timeout=30,
                what=f"chain {chain_id} indexed to {head}",
            )

        return wait

    try:
        with ExitStack() as stack:
            logs = {
                chain_id: tmp_path / f"daemon-{chain_id}.log" for chain_id in (CHAIN_A, CHAIN_B)
            }
            for chain_id, log in logs.items():
                env = _daemon_env(database_url, chains[chain_id], chain_id)
                stack.enter_context(running_indexer(["run"], env, log_path=str(log)))
            with (
                Activity(
                    a, every=0.3, events=40, reorg_every=3, seed=1, before_reorg=indexed(CHAIN_A)
                ) as on_a,
                Activity(
                    b, every=0.3, events=40, reorg_every=3, seed=2, before_reorg=indexed(CHAIN_B)
                ) as on_b,
            ):
                _backfill(database_url, c, CHAIN_C, tmp_path / "backfill.log")
                wait_until(
                    lambda: on_a.reorgs and on_b.reorgs and min(on_a.rounds, on_b.rounds) >= 6,
                    timeout=90,
                    what="activity with a reorg on both chains",
                )
            for chain_id, live in chains.items():
                ends_equal_to_the_chain_and_a_fresh_index(
                    database_url, live, pg_databases, template_db, chain_id=chain_id
                )
            for chain_id, log in logs.items():
                _metrics_name_the_chain(log, chain_id)
                _status_names_the_chain(database_url, chains[chain_id], chain_id)
        for log in logs.values():
            assert '"fatal"' not in log.read_text()
    finally:
        listener.close()
    asyncio.run(_change_log_and_payloads_name_the_chain(database_url, listener.payloads))
    asyncio.run(
        _dashboards_per_chain(
            database_url,
            {i: oracle(live.chain.url, live.chain.factory) for i, live in chains.items()},
        )
    )


def _backfill(database_url: str, live: LiveChain, chain_id: int, log: Path) -> None:
    env = _daemon_env(database_url, live, chain_id)
    args = ["backfill", "--from-block", str(live.chain.factory_block)]
    with running_indexer([*args, "--to-block", str(live.head())], env, log_path=str(log)) as p:
        assert wait_exit(p, 120, log=log) == 0


def _metrics_name_the_chain(log: Path, chain_id: int) -> None:
    """Every audifi_indexer_ sample the daemon exports carries its chain's id."""
    (url,) = [r["metrics"] for r in json_lines(log.read_text()) if r.get("event") == "serving"]
    answer = get(url)
    assert answer is not None and answer[0] == 200
    samples = parse_metrics(answer[1], keep=("chain_id",))
    ours = [name for name in samples if name.startswith("audifi_indexer_")]
    assert ours and all(f'chain_id="{chain_id}"' in name for name in ours), ours[:5]
    assert samples[f'audifi_indexer_leader{{chain_id="{chain_id}"}}'] == 1


def _status_names_the_chain(database_url: str, live: LiveChain, chain_id: int) -> None:
    done = subprocess.run(
        [*INDEXER, "status", "--json"],
        env=_daemon_env(database_url, live, chain_id),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["chain_id"] == chain_id
    assert report["indexed_block"] == live.head()


async def _change_log_and_payloads_name_the_chain(
    database_url: str, payloads: list[dict[str, Any]]
) -> None:
    """Each chain has its own gapless change log, and every payload names its chain and
    a change of that chain's log."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("select chain_id, seq from indexer_changes")
    finally:
        await conn.close()
    logged: dict[int, set[int]] = defaultdict(set)
    for r in rows:
        logged[r["chain_id"]].add(r["seq"])
    assert set(logged) == {CHAIN_A, CHAIN_B, CHAIN_C}
    for seqs in logged.values():
        assert seqs == set(range(1, len(seqs) + 1))
    announced: dict[int, set[int]] = defaultdict(set)
    for payload in payloads:
        announced[payload["chainId"]].add(payload["seq"])
    assert set(announced) == set(logged)
    for chain_id, seqs in announced.items():
        assert seqs <= logged[chain_id], chain_id
    reorgs = {p["chainId"] for p in payloads if p["type"] == "indexer.reorg"}
    assert reorgs == {CHAIN_A, CHAIN_B}


async def _dashboards_per_chain(database_url: str, states: dict[int, ChainState]) -> None:
    """master_chain_stats and artist_coin_stats: one row per contract and chain, with that
    chain's own figures."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("refresh materialized view master_chain_stats")
        await conn.execute("refresh materialized view artist_coin_stats")
        masters = await conn.fetch(
            "select chain_id, nft_address, minted_supply, nfts_outstanding, holders_count "
            "from master_chain_stats"
        )
        coins = await conn.fetch(
            "select chain_id, token_address, total_supply, holders_count from artist_coin_stats"
        )
    finally:
        await conn.close()
    assert {
        (r["chain_id"], bytes(r["nft_address"])): (
            int(r["minted_supply"]),
            r["nfts_outstanding"],
            r["holders_count"],
        )
        for r in masters
    } == {
        (chain_id, nft): (state.nft_minted.get(nft, 0), len(owners), len(set(owners.values())))
        for chain_id, state in states.items()
        for nft in state.masters
        for owners in [state.nft_owners.get(nft, {})]
    }
    assert {
        (r["chain_id"], bytes(r["token_address"])): (int(r["total_supply"]), r["holders_count"])
        for r in coins
    } == {
        (chain_id, coin): (
            state.coin_total_supply[coin],
            sum(
                1 for holder, n in state.coin_balances.get(coin, {}).items() if n and holder != ZERO
            ),
        )
        for chain_id, state in states.items()
        for coin in state.artist_coins
    }
