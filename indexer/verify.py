"""`audifi-indexer verify`: re-read a block range from the node and compare it with the index.

Three checks over [from_block, to_block]:
- block hashes: every stored raw row, and the reorg window, names the node's hash of its block;
- event counts per block and kind: stored raw rows vs the node's logs, decoded as the
  pipeline decodes them (children the factory deployed are discovered from the node);
- derived state of every token touched in the range: master_nfts owners vs ownerOf and
  token_holders balances vs balanceOf, by eth_call at the block the stored state stands for
  (the highest of the checkpoint and the last stored transfer).

Read-only: every query runs in one read-only, repeatable-read transaction, so a daemon
writing meanwhile cannot make the stored side disagree with itself.

With AUDIFI_DATABASE_REPLICA_URL the index is read from the replica, but only once it has
replayed everything the primary had written when verify started (waiting at most
AUDIFI_DATABASE_REPLICA_WAIT_SECONDS): a replica behind would show as differences what it
has not replayed yet. Still behind by then, the primary is read, after one warning line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import asyncpg
import structlog
import typer

from indexer.audit import audit_range
from indexer.chain import ZERO_ADDRESS, BlockRef, CoinTransfer, NftTransfer, Position, RawLog
from indexer.config import Settings
from indexer.dbreplica import open_replica
from indexer.decode import decode
from indexer.errors import ConfigError, Fatal, RangeTooLarge
from indexer.registry import Registry
from indexer.service import open_audit_reader, open_pipeline
from indexer.source import Fetched
from indexer.step import Discovery, Pipeline
from indexer.store.ops import BlockRows, Holding, Nft, Snapshot, snapshot
from indexer.store.replica import measure_lag, replayed
from indexer.store.state import Store
from indexer.tables import TABLE_OF_EVENT

log = structlog.get_logger("verify")

OWNER_OF = bytes.fromhex("6352211e")  # ownerOf(uint256); reverts for a burned token
BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
DIFFERENCES_EXIT_CODE = 3  # 0: the index agrees; 1: could not verify; 2: usage
# An eth_call to an address without code answers nothing: the contract is not there (yet).
_NO_CODE = "no contract there at that block (not deployed yet)"

StoredRows = dict[str, BlockRows]  # table -> (block, hash) -> rows


@dataclass(frozen=True, slots=True)
class Report:
    """What verify compared and every difference it found (empty when the index agrees)."""

    from_block: int
    to_block: int
    state_block: int
    events: int
    tokens: int
    balances: int
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        found = (
            "no differences"
            if self.ok
            else f"{len(self.differences)} difference{'s' * (len(self.differences) != 1)}"
        )
        return (
            f"verify {self.from_block}..{self.to_block}: {found} "
            f"({self.to_block - self.from_block + 1} blocks, {self.events} events; "
            f"{self.tokens} NFT owners and {self.balances} balances compared at block "
            f"{self.state_block}, the block the stored state stands for)"
        )


@dataclass(slots=True)
class _Tally:
    events: int = 0
    nfts: set[Nft] = field(default_factory=set)
    holdings: set[Holding] = field(default_factory=set)
    differences: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _NodeView:
    """The node's logs of one chunk, decoded: counts per (block, table) and what they touch."""

    counts: Counter[tuple[int, str]]
    nfts: set[Nft]
    holdings: set[Holding]
    events: int


async def run_verify_against(
    settings: Settings, from_block: int, to_block: int, against: str
) -> bool:
    """Compare the coverage ledger of the range with another provider's eth_getLogs (for
    an operator who suspects the indexing node): print each block that differs, then a
    summary; True when none does. Read-only."""
    other = settings.model_copy(update={"audit_rpc_url": against})
    async with (
        open_pipeline(settings) as p,
        open_replica(settings) as replica,
        open_audit_reader(other, p) as reader,
    ):
        index = await index_to_read(p, replica, wait=settings.database_replica_wait_seconds)
        reading = replace(p, store=index)
        report = await audit_range(reading, reader, from_block, to_block, heal=False)
    for found in report.found:
        typer.echo(
            f"block {found.block_number}: the index holds "
            f"{found.ledger.log_count if found.ledger else 0} log(s), the other provider "
            f"{found.chain.log_count if found.chain else 0} ({found.kind})"
        )
    verdict = f"{len(report.found)} block(s) differ" if report.found else "no differences"
    typer.echo(
        f"verify {from_block}..{to_block} against another provider: {verdict} "
        f"({report.blocks} committed blocks compared, {report.reorging} changing at the tip)"
    )
    return not report.found


async def run_verify(settings: Settings, from_block: int, to_block: int) -> bool:
    """Print each difference, then a one-line summary; True when there are none."""
    async with open_pipeline(settings) as p, open_replica(settings) as replica:
        index = await index_to_read(p, replica, wait=settings.database_replica_wait_seconds)
        report = await verify(p, from_block, to_block, index=index)
    for line in report.differences:
        typer.echo(line)
    typer.echo(report.summary())
    return report.ok


async def index_to_read(p: Pipeline, replica: asyncpg.Pool | None, *, wait: float) -> Store:
    """Where verify reads the index: the replica once it has replayed the primary's WAL
    position as of now (within `wait` seconds), so that nothing the primary holds is
    missing from what is compared; else the primary, after one warning line. Refuses a
    replica that is not a standby of the primary (NotAStandby)."""
    if replica is None:
        return p.store
    lag = await measure_lag(p.store.pool, replica, p.store.chain_id)
    if lag.caught_up or await replayed(replica, lag.primary_lsn, within=wait):
        log.info("verify_reads", database="replica")
        return Store(replica, p.store.chain_id, reorg_window=p.reorg_window)
    log.warning(
        "db_replica_behind",
        lag_blocks=lag.blocks,
        lag_bytes=lag.bytes,
        lag_seconds=lag.seconds,
        replay_paused=lag.paused,
        waited_s=wait,
        reading="primary",
    )
    return p.store


async def verify(
    p: Pipeline, from_block: int, to_block: int, *, index: Store | None = None
) -> Report:
    """Compare [from_block, to_block] with the node; never writes to the database. The
    stored side is read from `index` (default: the pipeline's store, the primary).

    Children are discovered from the node's factory logs, not taken from the index.
    Raises Fatal when the range is beyond the node's head or nothing is indexed, and the
    node's or the database's errors when either fails."""
    head = await p.source.head()
    if to_block > head:  # bad input, as for backfill and audit: exit 2
        raise ConfigError(f"--to-block {to_block} is beyond the node's head {head}")
    # Children from the node, not from the index.
    registry = await Discovery.after(p, Position(None, ())).run(p, until=to_block)
    tally = _Tally()
    async with snapshot((index or p.store).pool, p.store.chain_id) as stored:
        state_block = await stored.state_block()
        if state_block is None:
            raise Fatal(f"nothing is indexed for chain {p.store.chain_id} yet")
        if state_block > head:
            raise Fatal(f"the node's head {head} is behind the index (block {state_block})")
        start = from_block
        while start <= to_block:
            end = p.planner.end_for(start, to_block)
            try:
                fetched = await p.source.fetch(start, end, registry.addresses(up_to=end))
            except RangeTooLarge as e:
                p.planner.refused(e, start=start, end=end)
                continue
            p.planner.succeeded(blocks=end - start + 1, logs=len(fetched.logs))
            await _verify_chunk(p, registry, stored, fetched, state_block, tally)
            start = end + 1
    return Report(
        from_block=from_block,
        to_block=to_block,
        state_block=state_block,
        events=tally.events,
        tokens=len(tally.nfts),
        balances=len(tally.holdings),
        differences=tuple(tally.differences),
    )


async def _verify_chunk(
    p: Pipeline,
    registry: Registry,
    stored: Snapshot,
    fetched: Fetched,
    state_block: int,
    tally: _Tally,
) -> None:
    first, last = fetched.from_block, fetched.to_block
    node = _node_view(registry, fetched.logs)
    rows = await stored.rows_per_block(first, last)
    window = await stored.window(first, last)
    numbers = {n for per_block in rows.values() for n, _ in per_block} | window.keys()
    headers = await _headers(p, fetched, numbers)
    tally.events += node.events
    tally.differences += _hash_differences(rows, window, headers)
    tally.differences += _count_differences(rows, node.counts)

    nfts = sorted((node.nfts | await stored.touched_nfts(first, last)) - tally.nfts)
    tally.nfts.update(nfts)
    tally.differences += await _owner_differences(p, stored, nfts, state_block)

    holdings = sorted((node.holdings | await stored.touched_holdings(first, last)) - tally.holdings)
    tally.holdings.update(holdings)
    tally.differences += await _balance_differences(p, stored, holdings, state_block)


def _node_view(registry: Registry, logs: Iterable[RawLog]) -> _NodeView:
    """Decode as the pipeline does: a child's logs count from its creation block on."""
    counts: Counter[tuple[int, str]] = Counter()
    nfts: set[Nft] = set()
    holdings: set[Holding] = set()
    events = 0
    for raw in logs:
        contract = registry.get(raw.address)
        if contract is None or raw.block_number < contract.since_block:
            continue
        item = decode(raw, contract)
        if item is None:
            continue
        events += 1
        counts[(raw.block_number, TABLE_OF_EVENT[type(item)].name)] += 1
        if isinstance(item, NftTransfer):
            nfts.add((raw.address, item.token_id))
        elif isinstance(item, CoinTransfer):
            holdings.update((raw.address, h) for h in (item.sender, item.recipient))
    holdings = {h for h in holdings if h[1] != ZERO_ADDRESS}
    return _NodeView(counts=counts, nfts=nfts, holdings=holdings, events=events)


async def _headers(p: Pipeline, fetched: Fetched, numbers: set[int]) -> dict[int, BlockRef | None]:
    headers: dict[int, BlockRef | None] = dict(fetched.headers)
    missing = numbers - headers.keys()
    if missing:
        headers.update(await p.source.headers(missing))
    return headers


def _hash_differences(
    stored: StoredRows, window: dict[int, bytes], headers: dict[int, BlockRef | None]
) -> list[str]:
    found: list[str] = []
    for table, rows in stored.items():
        for (number, block_hash), n in sorted(rows.items()):
            node = headers[number]
            if node is None or node.hash != block_hash:
                found.append(
                    f"block {number}: {n} {table} row(s) stored under hash 0x{block_hash.hex()}, "
                    f"the node's block is {_describe(node)}"
                )
    for number, block_hash in sorted(window.items()):
        node = headers[number]
        if node is None or node.hash != block_hash:
            found.append(
                f"block {number}: the reorg window (indexer_blocks) has hash "
                f"0x{block_hash.hex()}, the node's block is {_describe(node)}"
            )
    return found


def _describe(header: BlockRef | None) -> str:
    return "missing" if header is None else f"0x{header.hash.hex()}"


def _count_differences(stored: StoredRows, node: Counter[tuple[int, str]]) -> list[str]:
    have: Counter[tuple[int, str]] = Counter()
    for table, rows in stored.items():
        for (number, _), n in rows.items():
            have[(number, table)] += n
    found: list[str] = []
    for number, table in sorted(have.keys() | node.keys()):
        stored_n, node_n = have[(number, table)], node[(number, table)]
        if stored_n != node_n:
            found.append(f"block {number}: {stored_n} {table} row(s) stored, the node has {node_n}")
    return found


async def _owner_differences(
    p: Pipeline, stored: Snapshot, nfts: list[Nft], block: int
) -> list[str]:
    if not nfts:
        return []
    owners = await stored.owners(nfts)
    answers = await p.source.eth_calls(
        [(a, OWNER_OF + t.to_bytes(32, "big")) for a, t in nfts], block
    )
    found: list[str] = []
    for (address, token), answer in zip(nfts, answers, strict=True):
        chain = "burned" if answer is None else _address(answer) if answer else _NO_CODE
        row = owners[(address, token)]
        have = "no master_nfts row" if row is None else _stored_owner(*row)
        if have != chain:
            found.append(
                f"NFT 0x{address.hex()} #{token}: stored owner {have}, "
                f"ownerOf at block {block} says {chain}"
            )
    return found


async def _balance_differences(
    p: Pipeline, stored: Snapshot, holdings: list[Holding], block: int
) -> list[str]:
    if not holdings:
        return []
    balances = await stored.balances(holdings)
    answers = await p.source.eth_calls(
        [(t, BALANCE_OF + bytes(12) + h) for t, h in holdings], block
    )
    found: list[str] = []
    for (token, holder), answer in zip(holdings, answers, strict=True):
        if answer is None:
            found.append(f"coin 0x{token.hex()}: balanceOf(0x{holder.hex()}) reverted")
            continue
        if not answer:
            found.append(f"coin 0x{token.hex()}: balanceOf at block {block}: {_NO_CODE}")
            continue
        chain = int.from_bytes(answer, "big")
        if balances[(token, holder)] != chain:
            found.append(
                f"coin 0x{token.hex()} holder 0x{holder.hex()}: stored balance "
                f"{balances[(token, holder)]}, balanceOf at block {block} says {chain}"
            )
    return found


def _address(word: bytes) -> str:
    return "0x" + word[-20:].hex()


def _stored_owner(owner: bytes, burned: bool) -> str:
    if burned and owner == ZERO_ADDRESS:
        return "burned"
    return "0x" + owner.hex() + (" (marked burned)" if burned else "")
