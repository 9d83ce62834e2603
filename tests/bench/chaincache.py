"""The benchmark's chains: generated once with the dev-chain workload, kept as anvil state.

A chain is cached in `.bench/` as anvil's `--dump-state` file plus a small JSON of what it
holds. The key is the size, the seed, the shape (every workload parameter) and a hash of
everything else that decides the chain's contents (contract artifacts and the workload
generator's source), so a change to any of them regenerates instead of benchmarking a stale
chain. The meta file is
written last: a generation that was interrupted leaves no usable cache entry.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from indexer.devchain import anvil as devanvil
from indexer.devchain import workload as devworkload
from indexer.devchain.contracts import ARTIFACTS_DIR
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig

CACHE_DIR = Path(__file__).resolve().parents[2] / ".bench"
MAX_EVENTS_PER_TX = 250
# anvil writes its state on SIGTERM; a 1M-event chain takes a while to serialise.
_DUMP_TIMEOUT_S = 900.0
_LOAD_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """A chain's size, seed and shape: the workload parameters that decide its cardinality."""

    events: int
    seed: int
    txs_per_block: int
    max_events_per_tx: int = MAX_EVENTS_PER_TX
    masters: int = 13
    artists: int = 13
    master_supply: tuple[int, int] = (100, 2000)
    synthetic_holders: int = 200

    def workload(self) -> WorkloadConfig:
        return WorkloadConfig(
            seed=self.seed,
            masters=self.masters,
            artists=self.artists,
            max_events_per_tx=self.max_events_per_tx,
            txs_per_block=self.txs_per_block,
            master_supply=self.master_supply,
            synthetic_holders=self.synthetic_holders,
        )


@dataclass(frozen=True, slots=True)
class CachedChain:
    """What a cached chain holds; addresses are 0x-hex."""

    key: str
    events: int
    txs: int
    counts: dict[str, int]
    factory: str
    factory_block: int
    head: int
    children: list[str]  # every NFT, distributor and artist coin the factory deployed
    generation_s: float
    dump_bytes: int

    @property
    def factory_bytes(self) -> bytes:
        return bytes.fromhex(self.factory[2:])

    @property
    def blocks(self) -> int:
        return self.head - self.factory_block + 1


def cache_key(spec: ChainSpec) -> str:
    """size, seed, packing and a hash of the artifacts and the generator's source."""
    digest = hashlib.sha256()
    sources = sorted(ARTIFACTS_DIR.glob("*.json"))
    sources += [Path(devworkload.__file__), Path(devworkload.__file__).with_name("model.py")]
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    shape = (
        f"t{spec.txs_per_block}-e{spec.max_events_per_tx}-m{spec.masters}-a{spec.artists}"
        f"-n{spec.master_supply[0]}_{spec.master_supply[1]}-h{spec.synthetic_holders}"
    )
    return f"chain-{spec.events}-s{spec.seed}-{shape}-{digest.hexdigest()[:12]}"


def state_path(key: str) -> Path:
    return CACHE_DIR / f"{key}.state.json"


def meta_path(key: str) -> Path:
    return CACHE_DIR / f"{key}.meta.json"


def cached(spec: ChainSpec) -> CachedChain | None:
    """The cache entry for `spec`, if a complete one exists."""
    key = cache_key(spec)
    if not (meta_path(key).exists() and state_path(key).exists()):
        return None
    raw: dict[str, Any] = orjson.loads(meta_path(key).read_bytes())
    return CachedChain(**raw)


def generate(spec: ChainSpec, *, log: Any = print) -> CachedChain:
    """Runs the workload on a fresh anvil and dumps its state; replaces any old entry."""
    key = cache_key(spec)
    CACHE_DIR.mkdir(exist_ok=True)
    meta_path(key).unlink(missing_ok=True)
    partial = state_path(key).with_suffix(".partial")
    partial.unlink(missing_ok=True)
    config = spec.workload()
    log(f"generating {spec.events:,} events ({spec})")
    began = time.perf_counter()
    node = devanvil.start_anvil(no_mining=True, dump_state=partial)
    try:
        with RpcClient(node.url) as rpc:
            workload = Workload(rpc, config)
            summary = workload.run(spec.events)
            head = devanvil.block_number(rpc)
        children = [a for m in workload.masters for a in (m.nft, m.distributor)]
        children += [coin.token for coin in workload.coins]
    finally:
        node.stop(timeout=_DUMP_TIMEOUT_S)
    elapsed = time.perf_counter() - began
    partial.rename(state_path(key))
    chain = CachedChain(
        key=key,
        events=summary.events,
        txs=summary.txs,
        counts=summary.counts,
        factory="0x" + summary.factory.hex(),
        factory_block=summary.factory_block,
        head=head,
        children=["0x" + a.hex() for a in children],
        generation_s=round(elapsed, 2),
        dump_bytes=state_path(key).stat().st_size,
    )
    meta_path(key).write_bytes(orjson.dumps(asdict(chain), option=orjson.OPT_INDENT_2))
    log(f"generated {chain.events:,} events in {chain.blocks} blocks in {elapsed:.1f} s")
    return chain


def ensure(spec: ChainSpec, *, log: Any = print) -> tuple[CachedChain, bool]:
    """The cached chain for `spec`, generating it if needed; True when it was generated now."""
    found = cached(spec)
    if found is not None:
        return found, False
    return generate(spec, log=log), True


def start(chain: CachedChain) -> devanvil.Anvil:
    """A fresh anvil (manual mining) holding the cached chain; checks it has the right head."""
    node = devanvil.start_anvil(
        no_mining=True, load_state=state_path(chain.key), ready_timeout=_LOAD_TIMEOUT_S
    )
    try:
        head = devanvil.block_number(node.rpc)
    except BaseException:
        node.stop()
        raise
    if head != chain.head:
        node.stop()
        raise RuntimeError(
            f"{state_path(chain.key)} loads at block {head}, not {chain.head}: delete it"
        )
    return node
