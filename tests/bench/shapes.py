"""The shapes of chain the benchmark measures: cardinality is what costs, so it varies.

`dense` is the benchmark's original chain: few contracts, a small holder pool and blocks
packed with large transactions, which measures the pipeline at its friendliest. The
`production` shape follows what AudiFi expects in production: many masters and artist
coins, tens of thousands of distinct owners and holders, transactions of 1 to 200 events
and a few of them per block, so that the database's work per event (index probes, upserts
of distinct keys) is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tests.bench.chaincache import ChainSpec


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    description: str
    spec: ChainSpec  # events and seed are set per run

    def chain(self, events: int, seed: int) -> ChainSpec:
        return replace(self.spec, events=events, seed=seed)


SHAPES = {
    "dense": Shape(
        "dense",
        "13 masters, 13 coins, 200 synthetic holders; 40 txs of up to 250 events a block",
        ChainSpec(events=0, seed=0, txs_per_block=40, max_events_per_tx=250),
    ),
    "production": Shape(
        "production",
        "58 masters of 1,500-5,500 NFTs, 58 coins, 54,000 synthetic holders; "
        "7 txs of 1-200 events a block",
        ChainSpec(
            events=0,
            seed=0,
            txs_per_block=7,
            max_events_per_tx=200,
            masters=58,
            artists=58,
            master_supply=(1_500, 5_500),
            synthetic_holders=54_000,
        ),
    ),
}
DEFAULT_SHAPES = ("dense", "production")
