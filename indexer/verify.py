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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import orjson
import typer

from indexer.backfill import discover_children
from indexer.chain import (
    ZERO_ADDRESS,
    ArtistCoinDeployed,
    BlockRef,
    CoinTransfer,
    DividendClaimed,
    DividendDeposited,
    MasterDeployed,
    NftTransfer,
    Quarantined,
    RawLog,
)
from indexer.config import Settings
from indexer.decode import decode
from indexer.errors import Fatal, RangeTooLarge, RpcError, RpcUnavailable
from indexer.registry import Registry
from indexer.service import open_pipeline
from indexer.source import Fetched
from indexer.step import Pipeline
from indexer.store.db import connection, database_errors
from indexer.store.revert import RAW_TABLES

OWNER_OF = bytes.fromhex("6352211e")  # ownerOf(uint256); reverts for a burned token
BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
CALLS_PER_REQUEST = 200
DIFFERENCES_EXIT_CODE = 3  # 0: the index agrees; 1: could not verify; 2: usage

_TABLE_OF: dict[type, str] = {
    MasterDeployed: "master_contracts",
    ArtistCoinDeployed: "artist_tokens",
    NftTransfer: "nft_transfers",
    CoinTransfer: "token_transfers",
    DividendDeposited: "dividend_events",
    DividendClaimed: "dividend_claims",
    Quarantined: "indexer_quarantine",
}

_STATE_BLOCK = """
select greatest(
    (select block_number from indexer_checkpoints where chain_id = $1),
    (select max(block_number) from nft_transfers where chain_id = $1),
    (select max(block_number) from token_transfers where chain_id = $1)
)
"""

_ROWS_PER_BLOCK = {
    table: f"select block_number, block_hash, count(*) as n from {table} "
    "where chain_id = $1 and block_number between $2 and $3 "
    "group by block_number, block_hash"
    for table in RAW_TABLES
}

_WINDOW = """
select block_number, block_hash from indexer_blocks
where chain_id = $1 and block_number between $2 and $3
"""

_STORED_NFTS = """
select distinct contract_address, token_id from nft_transfers
where chain_id = $1 and block_number between $2 and $3
"""

_STORED_HOLDERS = """
select distinct t.token_address, h.holder
from token_transfers t
cross join lateral (values (t.from_address), (t.to_address)) as h(holder)
where t.chain_id = $1 and t.block_number between $2 and $3 and h.holder <> $4
"""

_OWNERS = """
select n.contract_address, n.token_id, m.owner_address, m.is_burned
from unnest($2::bytea[], $3::numeric[]) as n(contract_address, token_id)
left join master_nfts m
    on m.chain_id = $1
    and m.contract_address = n.contract_address
    and m.token_id = n.token_id
"""

_BALANCES = """
select k.token_address, k.holder_address, h.balance
from unnest($2::bytea[], $3::bytea[]) as k(token_address, holder_address)
left join token_holders h
    on h.chain_id = $1
    and h.token_address = k.token_address
    and h.holder_address = k.holder_address
"""

Nft = tuple[bytes, int]  # (contract, token id)
Holding = tuple[bytes, bytes]  # (token contract, holder)
StoredRows = dict[str, dict[tuple[int, bytes], int]]  # table -> (block, hash) -> rows


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
            f"({self.to_block - self.from_block + 1} blocks, {self.events} events, "
            f"{self.tokens} NFT owners and {self.balances} balances at block {self.state_block})"
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


class EthCalls:
    """Batched eth_call at a fixed block, where a revert is an answer (None), not a failure.

    RpcClient.batch fails a whole batch on any error item, which suits the pipeline but
    not ownerOf, which reverts for a burned token. No retries: verify is a one-shot
    command, and a node that fails makes it exit 1."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url

    async def __call__(
        self, calls: Sequence[tuple[bytes, bytes]], block: int
    ) -> list[bytes | None]:
        """(contract, calldata) pairs -> return data, or None where the call reverted."""
        out: list[bytes | None] = []
        for start in range(0, len(calls), CALLS_PER_REQUEST):
            out += await self._batch(calls[start : start + CALLS_PER_REQUEST], block)
        return out

    async def _batch(self, calls: Sequence[tuple[bytes, bytes]], block: int) -> list[bytes | None]:
        body = orjson.dumps(
            [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "eth_call",
                    "params": [{"to": "0x" + to.hex(), "data": "0x" + data.hex()}, hex(block)],
                }
                for i, (to, data) in enumerate(calls)
            ]
        )
        doing = f"eth_call at block {block}"
        try:
            async with self._http.post(
                self._url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                status, raw = response.status, await response.read()
            answers = orjson.loads(raw) if status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError, orjson.JSONDecodeError) as e:
            raise RpcUnavailable(f"{doing}: {type(e).__name__}") from e
        if status != 200:  # the URL stays out of the message: it may carry a key
            raise RpcUnavailable(f"{doing}: node answered HTTP {status}")
        by_id = (
            {a.get("id"): a for a in answers if isinstance(a, dict)}
            if isinstance(answers, list)
            else {}
        )
        if set(by_id) != set(range(len(calls))):
            raise RpcUnavailable(f"{doing}: the node's batch answer does not match the calls")
        return [_call_result(by_id[i], doing) for i in range(len(calls))]


def _call_result(answer: dict[str, object], doing: str) -> bytes | None:
    error = answer.get("error")
    if error is None:
        return bytes.fromhex(str(answer.get("result", "0x"))[2:])
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    if code == 3 or "revert" in message.lower():
        return None
    raise RpcError(f"{doing}: {message} (code {code})")


async def run_verify(settings: Settings, from_block: int, to_block: int) -> bool:
    """Print each difference, then a one-line summary; True when there are none.

    eth_calls go to the first of the configured RPC endpoints."""
    timeout = aiohttp.ClientTimeout(total=settings.rpc_timeout)
    async with open_pipeline(settings) as p, aiohttp.ClientSession(timeout=timeout) as http:
        report = await verify(
            p, from_block, to_block, calls=EthCalls(http, settings.rpc_endpoints[0])
        )
    for line in report.differences:
        typer.echo(line)
    typer.echo(report.summary())
    return report.ok


async def verify(p: Pipeline, from_block: int, to_block: int, *, calls: EthCalls) -> Report:
    """Compare [from_block, to_block] with the node; never writes to the database.

    Raises Fatal when the range is beyond the node's head or nothing is indexed, and the
    node's or the database's errors when either fails."""
    head = await p.source.head()
    if to_block > head:
        raise Fatal(f"--to-block {to_block} is beyond the node's head {head}")
    await discover_children(p, since=p.registry.factory.since_block, until=to_block)
    tally = _Tally()
    async with (
        database_errors(f"verifying blocks {from_block}..{to_block}"),
        connection(p.store.pool) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        state_block = await conn.fetchval(_STATE_BLOCK, p.store.chain_id)
        if state_block is None:
            raise Fatal(f"nothing is indexed for chain {p.store.chain_id} yet")
        if state_block > head:
            raise Fatal(f"the node's head {head} is behind the index (block {state_block})")
        start = from_block
        while start <= to_block:
            end = p.planner.end_for(start, to_block)
            try:
                fetched = await p.source.fetch(start, end, p.registry.addresses(up_to=end))
            except RangeTooLarge as e:
                p.planner.refused(e, start=start, end=end)
                continue
            p.planner.succeeded(blocks=end - start + 1, logs=len(fetched.logs))
            await _verify_chunk(p, conn, fetched, state_block, calls, tally)
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
    conn: asyncpg.Connection,
    fetched: Fetched,
    state_block: int,
    calls: EthCalls,
    tally: _Tally,
) -> None:
    chain_id, first, last = p.store.chain_id, fetched.from_block, fetched.to_block
    node = _node_view(p.registry, fetched.logs)
    stored: StoredRows = {}
    for table, query in _ROWS_PER_BLOCK.items():
        rows = await conn.fetch(query, chain_id, first, last)
        stored[table] = {(r["block_number"], bytes(r["block_hash"])): r["n"] for r in rows}
    window = {r[0]: bytes(r[1]) for r in await conn.fetch(_WINDOW, chain_id, first, last)}
    numbers = {n for rows in stored.values() for n, _ in rows} | window.keys()
    headers = await _headers(p, fetched, numbers)
    tally.events += node.events
    tally.differences += _hash_differences(stored, window, headers)
    tally.differences += _count_differences(stored, node.counts)

    stored_nfts = {
        (bytes(r[0]), int(r[1])) for r in await conn.fetch(_STORED_NFTS, chain_id, first, last)
    }
    nfts = sorted((node.nfts | stored_nfts) - tally.nfts)
    tally.nfts.update(nfts)
    tally.differences += await _owner_differences(conn, chain_id, nfts, state_block, calls)

    stored_holdings = {
        (bytes(r[0]), bytes(r[1]))
        for r in await conn.fetch(_STORED_HOLDERS, chain_id, first, last, ZERO_ADDRESS)
    }
    holdings = sorted((node.holdings | stored_holdings) - tally.holdings)
    tally.holdings.update(holdings)
    tally.differences += await _balance_differences(conn, chain_id, holdings, state_block, calls)


def _node_view(registry: Registry, logs: Iterable[RawLog]) -> _NodeView:
    """Decode as step.commit does: a child's logs count from its creation block on."""
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
        counts[(raw.block_number, _TABLE_OF[type(item)])] += 1
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
    conn: asyncpg.Connection, chain_id: int, nfts: list[Nft], block: int, calls: EthCalls
) -> list[str]:
    if not nfts:
        return []
    rows = await conn.fetch(_OWNERS, chain_id, [a for a, _ in nfts], [t for _, t in nfts])
    stored = {
        (bytes(r[0]), int(r[1])): None if r[2] is None else (bytes(r[2]), bool(r[3])) for r in rows
    }
    answers = await calls([(a, OWNER_OF + t.to_bytes(32, "big")) for a, t in nfts], block)
    found: list[str] = []
    for (address, token), answer in zip(nfts, answers, strict=True):
        chain = "burned" if answer is None else _address(answer)
        row = stored[(address, token)]
        have = "no master_nfts row" if row is None else _stored_owner(*row)
        if have != chain:
            found.append(
                f"NFT 0x{address.hex()} #{token}: stored owner {have}, "
                f"ownerOf at block {block} says {chain}"
            )
    return found


async def _balance_differences(
    conn: asyncpg.Connection, chain_id: int, holdings: list[Holding], block: int, calls: EthCalls
) -> list[str]:
    if not holdings:
        return []
    rows = await conn.fetch(_BALANCES, chain_id, [t for t, _ in holdings], [h for _, h in holdings])
    stored = {(bytes(r[0]), bytes(r[1])): int(r[2] or 0) for r in rows}
    answers = await calls([(t, BALANCE_OF + bytes(12) + h) for t, h in holdings], block)
    found: list[str] = []
    for (token, holder), answer in zip(holdings, answers, strict=True):
        if answer is None:
            found.append(f"coin 0x{token.hex()}: balanceOf(0x{holder.hex()}) reverted")
            continue
        chain = int.from_bytes(answer, "big")
        if stored[(token, holder)] != chain:
            found.append(
                f"coin 0x{token.hex()} holder 0x{holder.hex()}: stored balance "
                f"{stored[(token, holder)]}, balanceOf at block {block} says {chain}"
            )
    return found


def _address(word: bytes) -> str:
    return "0x" + word[-20:].hex()


def _stored_owner(owner: bytes, burned: bool) -> str:
    if burned and owner == ZERO_ADDRESS:
        return "burned"
    return "0x" + owner.hex() + (" (marked burned)" if burned else "")
