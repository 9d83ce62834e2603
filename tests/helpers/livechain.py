"""A dev chain with AudiFi activity that tests can extend: mine, reorg, ask for the head,
or keep adding blocks (and reorgs) on a thread while the indexer runs.

anvil mines only on request here, so a test decides exactly which blocks exist. The
chain and its anvil are stopped when the `with` block ends. Two shapes serve most tests:
`small_chain` (some fifty blocks of many events) and `sparse_chain` (many small blocks)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from indexer.devchain import contracts as c
from indexer.devchain.anvil import DEFAULT_CHAIN_ID, dev_accounts, mine, reorg, start_anvil
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig
from tests.helpers.chain import Chain


@dataclass
class LiveChain:
    """anvil with AudiFi contracts and the workload that can add more events."""

    chain: Chain
    workload: Workload
    rpc: RpcClient  # the workload's connection: use from the test's own thread only

    def head(self) -> int:
        """The head, over a connection of its own (callable from any thread)."""
        with RpcClient(self.chain.url) as rpc:
            return int(rpc.call("eth_blockNumber"), 16)

    def block_hash(self, number: int) -> bytes:
        with RpcClient(self.chain.url) as rpc:
            return bytes.fromhex(rpc.call("eth_getBlockByNumber", [hex(number), False])["hash"][2:])

    def mine(self, blocks: int) -> int:
        """Mine `blocks` empty blocks at once; the new head."""
        with RpcClient(self.chain.url) as rpc:
            mine(rpc, blocks)
            return int(rpc.call("eth_blockNumber"), 16)

    def reorg_keeping_transactions(self, depth: int) -> int:
        """Replace the last `depth` (at least 2) blocks; their transactions, in order, all
        go into the first new block. Events move to other blocks (new hashes, positions),
        nothing is lost, and the workload's model stays true. (With one block, the same
        transactions could make the very same block again.) Returns how many txs moved."""
        assert depth >= 2, "a one-block reorg keeping its transactions may change nothing"
        head = int(self.rpc.call("eth_blockNumber"), 16)
        old_tip = self.rpc.call("eth_getBlockByNumber", [hex(head), False])["hash"]
        raw = [
            self.rpc.call("eth_getRawTransactionByHash", [tx])
            for number in range(head - depth + 1, head + 1)
            for tx in self.rpc.call("eth_getBlockByNumber", [hex(number), False])["transactions"]
        ]
        reorg(self.rpc, depth, [(tx, 0) for tx in raw])
        assert int(self.rpc.call("eth_blockNumber"), 16) == head, "anvil_reorg keeps the height"
        assert self.rpc.call("eth_getBlockByNumber", [hex(head), False])["hash"] != old_tip
        return len(raw)


@contextmanager
def live_chain(
    config: WorkloadConfig, events: int, *, chain_id: int = DEFAULT_CHAIN_ID, deployer: int = 0
) -> Iterator[LiveChain]:
    """A fresh anvil holding `events` events of the workload `config` describes. The
    factory is deployed by dev account `deployer` first thing, so chains of one deployer
    have their factories, and the factories their children, at the same addresses."""
    anvil = start_anvil(no_mining=True, chain_id=chain_id)
    rpc = RpcClient(anvil.url)
    try:
        factory = c.deploy_factory(rpc, dev_accounts(rpc)[deployer]) if deployer else None
        workload = Workload(rpc, config, factory=factory)
        summary = workload.run(events)
        yield LiveChain(Chain(anvil, summary.factory, summary.factory_block), workload, rpc)
    finally:
        rpc.close()
        anvil.stop()


def small_chain(seed: int, events: int = 3_000) -> AbstractContextManager[LiveChain]:
    """anvil (mining only on request) with `events` events over some fifty blocks."""
    config = WorkloadConfig(seed=seed, masters=3, artists=3, txs_per_block=3, max_events_per_tx=40)
    return live_chain(config, events)


def sparse_chain(seed: int, events: int) -> AbstractContextManager[LiveChain]:
    """anvil with `events` events in many small blocks (few contracts, two transactions of
    up to 20 events a block): many blocks for few events, so that ranges matter."""
    config = WorkloadConfig(seed=seed, masters=3, artists=3, txs_per_block=2, max_events_per_tx=20)
    return live_chain(config, events)


class Activity:
    """On a thread: a workload round every `every` seconds and, every `reorg_every`
    rounds, a reorg of 2 or 3 blocks that keeps their transactions. Stops when the
    `with` block ends; an error on the thread is raised there."""

    def __init__(
        self,
        live: LiveChain,
        *,
        every: float,
        events: int,
        reorg_every: int = 0,
        seed: int = 0,
        before_reorg: Callable[[int], None] | None = None,
    ) -> None:
        self.live = live
        self.before_reorg = before_reorg  # called with the head, e.g. to wait until indexed
        self.every = every
        self.events = events
        self.reorg_every = reorg_every
        self.rounds = 0
        self.reorgs: list[int] = []
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                self.live.workload.round(self.events)
                self.rounds += 1
                if self.reorg_every and self.rounds % self.reorg_every == 0:
                    if self.before_reorg is not None:
                        self.before_reorg(self.live.head())
                    depth = self._rng.randint(2, 3)
                    self.live.reorg_keeping_transactions(depth)
                    self.reorgs.append(depth)
        except BaseException as e:  # raised in the test's thread by __exit__
            self._error = e

    def __enter__(self) -> Activity:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the activity thread did not stop"
        if self._error is not None:
            raise self._error
