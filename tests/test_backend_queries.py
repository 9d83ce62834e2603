"""The backend's read queries (sql/queries) against a real chain: the chain is the oracle.

The last test runs every query again from TypeScript, as the backend would (the generated
Drizzle schema and the `postgres` driver), and compares with asyncpg's answers.

One anvil chain for the module: the dev-chain workload, then a few transactions of its
own so that dividends are certainly deposited, partly claimed and partly claimable, with
a claimed NFT moved on afterwards. The chain is backfilled into one database; users,
wallets, artists, masters and IPOs are inserted for some holders and for the on-chain
masters. Each query's answer is compared with what the contracts say through eth_call
(ownerOf, balanceOf, credited, claimed, dividends) and eth_getLogs, never with the
indexer's tables.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from indexer.backend_queries import (
    PARAM_TYPES,
    QUERIES_DIR,
    Query,
    QueryFileError,
    load_queries,
    parse_query,
)
from indexer.backfill import backfill
from indexer.devchain import contracts as c
from indexer.devchain.anvil import dev_accounts, start_anvil
from indexer.devchain.oracle import ChainState, eth_calls, read_state
from indexer.devchain.rpc import RpcClient, RpcError
from indexer.devchain.workload import Workload, WorkloadConfig
from indexer.service import open_pipeline
from tests.helpers import pg
from tests.helpers.chain import Chain, settings_for

EVENTS = 3_000
ZERO = bytes(20)
# Receives NFTs that were claimed for the newest dividend before they moved to it.
RECEIVER = keccak(b"audifi-test-receiver")[-20:]
QUERY_NAMES = {
    "wallet_nfts",
    "wallet_coin_balances",
    "wallet_dividends",
    "master_holders",
    "master_ipo_progress",
    "nft_history",
    "coin_top_holders",
    "marketplace_listing",
}
# What PostgreSQL infers for each header type: the statement must declare exactly these.
PG_PARAM_TYPES = {"uuid": "uuid", "bigint": "int8", "int": "int4", "text": "text"}
# Result types a JavaScript driver turns into something lossy or awkward.
LOSSY_RESULT_TYPES = {"numeric", "bytea", "float4", "float8", "money"}
TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
FIRST_MARKET_PAGE = ("infinity", uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff"))


def hx(address: bytes) -> str:
    return "0x" + address.hex()


@dataclass
class World:
    """The indexed chain, the oracle's state and the off-chain rows the test inserted."""

    url: str
    rpc_url: str
    chain_id: int
    state: ChainState
    users: dict[str, uuid.UUID]  # label -> user id
    wallets: dict[str, list[bytes]]  # label -> addresses
    published: list[uuid.UUID]  # newest first, as the marketplace lists them
    not_deployed: uuid.UUID  # a published master with no contract yet
    ipo_status: dict[uuid.UUID, str | None]  # master -> status of the open IPO (None: none)
    ipo_latest: dict[uuid.UUID, str]  # master -> status master_ipo_progress shows
    master_of: dict[bytes, uuid.UUID] = field(default_factory=dict)  # nft -> master id


@pytest.fixture(scope="module")
def world(pg_databases: pg.Databases, template_db: str) -> Iterator[World]:
    name = pg_databases.create(template=template_db)
    try:
        anvil = start_anvil(no_mining=True)
        try:
            with RpcClient(anvil.url) as rpc:
                config = WorkloadConfig(
                    seed=23, masters=4, artists=3, master_supply=(40, 160), synthetic_holders=30
                )
                workload = Workload(rpc, config)
                summary = workload.run(EVENTS)
                dividends_with_claims_then_a_transfer(rpc, workload)
                head = int(rpc.call("eth_blockNumber"), 16)
                chain_id = int(rpc.call("eth_chainId"), 16)
                state = read_state(
                    rpc, summary.factory, block=head, from_block=summary.factory_block
                )
            chain = Chain(anvil=anvil, factory=summary.factory, factory_block=summary.factory_block)
            url = pg_databases.url(name)
            asyncio.run(index(url, chain, head))
            yield asyncio.run(insert_off_chain(url, anvil.url, chain_id, state))
        finally:
            anvil.stop()
    finally:
        pg_databases.drop(name)


def dividends_with_claims_then_a_transfer(rpc: RpcClient, workload: Workload) -> None:
    """For two masters: a native and a token deposit, a third of their shares claimed,
    then one claimed NFT of each given to RECEIVER (the claims stay with the old owners)."""
    admin, payer = dev_accounts(rpc)[:2]
    owners = workload.expected_nft_owners()
    coin = workload.coins[0].token
    masters = [m for m in workload.masters if owners[m.nft]][:2]
    assert len(masters) == 2, "the workload should have minted NFTs of two masters"
    deposits = [c.deposit_native_tx(payer, masters[0].distributor, 10**18 + 7)]
    deposits.append(c.deposit_token_tx(payer, masters[1].distributor, coin, 3 * 10**30 + 11))
    c.transact(rpc, deposits)
    claims, moves = [], []
    for master in masters:
        (count,) = c.view(rpc, master.distributor, "dividendsCount()", ["uint256"])
        tokens = sorted(owners[master.nft])
        claims.append(c.claim_batch_tx(payer, master.distributor, count, tokens[::3]))
        moves.append(c.nft_admin_transfer_batch_tx(admin, master.nft, [tokens[0]], [RECEIVER]))
    c.transact(rpc, claims)
    c.transact(rpc, moves)


async def index(url: str, chain: Chain, head: int) -> None:
    async with open_pipeline(settings_for(url, chain)) as p:
        await backfill(p, chain.factory_block, head, head=head, concurrency=3)


async def insert_off_chain(url: str, rpc_url: str, chain_id: int, state: ChainState) -> World:
    """Users for some holders; an artist, a master and an IPO per on-chain master."""
    per_holder = Counter(o for owners in state.nft_owners.values() for o in owners.values())
    ranked = [holder for holder, _ in per_holder.most_common() if holder != RECEIVER]
    wallets = {
        "two wallets": ranked[:2],
        "one wallet": [ranked[len(ranked) // 2]],
        "received claimed NFTs": [RECEIVER],
        "no holdings": [keccak(b"nobody")[-20:]],
    }
    conn = await pg.connect(url)
    try:
        users = {}
        for label, addresses in wallets.items():
            users[label] = await insert_user(conn, label, addresses)
        world = World(
            url=url,
            rpc_url=rpc_url,
            chain_id=chain_id,
            state=state,
            users=users,
            wallets=wallets,
            published=[],
            not_deployed=uuid.uuid4(),
            ipo_status={},
            ipo_latest={},
        )
        await insert_masters(conn, world)
    finally:
        await conn.close()
    return world


async def insert_user(conn: asyncpg.Connection, label: str, addresses: list[bytes]) -> uuid.UUID:
    user_id: uuid.UUID = await conn.fetchval(
        "insert into users (email) values ($1) returning id",
        f"{label.replace(' ', '-')}@example.com",
    )
    for address in addresses:
        await conn.execute(
            "insert into user_wallets (user_id, address) values ($1, $2)", user_id, address
        )
    return user_id


async def insert_masters(conn: asyncpg.Connection, world: World) -> None:
    """Every on-chain master published except the last (a draft); IPOs: the first has a
    cancelled one and a live one, the second only a cancelled one, the others one live;
    plus a published master the factory has not deployed."""
    user_id = await insert_user(conn, "artist", [])
    artist_id = await conn.fetchval(
        "insert into artists (user_id, artist_name, slug) values ($1, 'The Artist', 'the-artist')"
        " returning id",
        user_id,
    )
    infos = sorted(world.state.masters.values(), key=lambda m: m.master_id)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    published: dict[uuid.UUID, datetime] = {}
    for i, info in enumerate(infos):
        master_id = uuid.UUID(bytes=info.master_id)
        world.master_of[info.nft] = master_id
        status = "draft" if i == len(infos) - 1 else "published"
        at = start + timedelta(days=i)
        await insert_master(conn, master_id, artist_id, status, at)
        if status == "published":
            published[master_id] = at
        if i in (0, 1):
            await insert_ipo(conn, master_id, "cancelled", start)
        if i != 1:
            await insert_ipo(conn, master_id, "live", start + timedelta(hours=1))
        world.ipo_status[master_id] = None if i == 1 else "live"
        world.ipo_latest[master_id] = "cancelled" if i == 1 else "live"
    # The same created_at as the newest published one: the keyset needs its tie-break on id.
    published[world.not_deployed] = max(published.values())
    await insert_master(conn, world.not_deployed, artist_id, "published", max(published.values()))
    world.published = sorted(published, key=lambda m: (published[m], m), reverse=True)


async def insert_master(
    conn: asyncpg.Connection, master_id: uuid.UUID, artist_id: uuid.UUID, status: str, at: datetime
) -> None:
    await conn.execute(
        "insert into masters (id, artist_id, title, status, created_at)"
        " values ($1, $2, $3, $4, $5)",
        master_id,
        artist_id,
        f"Master {master_id}",
        status,
        at,
    )


async def insert_ipo(
    conn: asyncpg.Connection, master_id: uuid.UUID, status: str, at: datetime
) -> None:
    await conn.execute(
        "insert into master_ipos (master_id, status, total_supply, mint_price,"
        " payment_token_address, revenue_share_nft_holders_bps, created_at)"
        " values ($1, $2, 1000, 12345678901234567890123, $3, 5000, $4)",
        master_id,
        status,
        ZERO,
        at,
    )


@pytest.fixture
async def db(world: World) -> AsyncIterator[asyncpg.Connection]:
    conn = await pg.connect(world.url)
    yield conn
    await conn.close()


QUERIES = load_queries()


async def run(conn: asyncpg.Connection, name: str, *args: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(QUERIES[name].sql, *args)]


# The files themselves.


def test_the_query_files_are_the_backends_queries() -> None:
    assert set(QUERIES) == QUERY_NAMES
    for query in QUERIES.values():
        assert query.endpoint.startswith("GET /"), query.name
        assert 0 < query.budget_ms <= 100, query.name
        assert query.description, query.name
        assert {p.type for p in query.params} <= PARAM_TYPES, query.name


async def test_parameters_and_results_survive_any_driver(database_url: str) -> None:
    """PostgreSQL infers the declared parameter types; no result is numeric, bytea or
    float (uint256 is text, addresses 0x-hex); every result carries chain_id."""
    conn = await pg.connect(database_url)
    try:
        for query in QUERIES.values():
            statement = await conn.prepare(query.sql)
            inferred = [t.name for t in statement.get_parameters()]
            assert inferred == [PG_PARAM_TYPES[p.type] for p in query.params], query.name
            columns = {a.name: a.type.name for a in statement.get_attributes()}
            lossy = {name: t for name, t in columns.items() if t in LOSSY_RESULT_TYPES}
            assert lossy == {}, query.name
            assert columns.get("chain_id") == "int8", query.name
    finally:
        await conn.close()


def test_a_header_that_lies_is_refused(tmp_path: Path) -> None:
    good = QUERIES["coin_top_holders"].path.read_text()
    path = tmp_path / "coin_top_holders.sql"
    for bad, message in [
        (good.replace("-- budget_ms: 25\n", ""), "lacks"),
        (good.replace("$3 limit int", "$3 limit integer"), "bad parameter"),
        (good.replace("$2 token text", "$3 token text"), "bad parameter"),
        (good + "select 1;\n", "one statement"),
    ]:
        with pytest.raises(QueryFileError, match=message):
            parse_query(bad, path)
    with pytest.raises(QueryFileError, match="not the file's name"):
        parse_query(good, tmp_path / "other.sql")


# The portfolio.


async def test_wallet_nfts_are_what_owner_of_says(db: asyncpg.Connection, world: World) -> None:
    for label, user_id in world.users.items():
        rows = await all_pages(db, user_id, page=7)
        mine = set(world.wallets[label])
        expected = {
            (hx(nft), token, hx(owner))
            for nft, owners in world.state.nft_owners.items()
            for token, owner in owners.items()
            if owner in mine
        }
        assert {(r["contract"], int(r["token_id"]), r["owner"]) for r in rows} == expected, label
        assert len(rows) == len(expected), label
        keys = [(r["chain_id"], bytes.fromhex(r["contract"][2:]), int(r["token_id"])) for r in rows]
        assert keys == sorted(keys), label
        for r in rows:
            assert r["chain_id"] == world.chain_id
            assert r["master_id"] == world.master_of[bytes.fromhex(r["contract"][2:])]
            assert r["minted_at"] <= r["last_transfer_at"]
        if label == "two wallets":
            assert len(rows) > 7, "the biggest holders' NFTs should need several pages"


async def all_pages(conn: asyncpg.Connection, user_id: uuid.UUID, *, page: int) -> list[Any]:
    rows: list[dict[str, Any]] = []
    cursor: tuple[int, str, str] = (0, "0x", "-1")
    while True:
        got = await run(conn, "wallet_nfts", user_id, *cursor, page)
        rows += got
        if len(got) < page:
            return rows
        cursor = (got[-1]["chain_id"], got[-1]["contract"], got[-1]["token_id"])


async def test_wallet_coin_balances_are_what_balance_of_says(
    db: asyncpg.Connection, world: World
) -> None:
    coins_seen = 0
    rpc = RpcClient(world.rpc_url)
    for label, user_id in world.users.items():
        rows = await run(db, "wallet_coin_balances", user_id, 1000)
        expected = {
            (hx(token), hx(holder)): balance
            for token, balances in world.state.coin_balances.items()
            for holder, balance in balances.items()
            if holder in world.wallets[label] and balance > 0
        }
        assert {(r["token"], r["holder"]): int(r["balance"]) for r in rows} == expected, label
        for r in rows:
            assert r["chain_id"] == world.chain_id
            token = bytes.fromhex(r["token"][2:])
            assert r["artist_id"] == uuid.UUID(bytes=world.state.artist_coins[token])
            (symbol,) = c.view(rpc, token, "symbol()", ["string"])
            (decimals,) = c.view(rpc, token, "decimals()", ["uint8"])
            assert (r["symbol"], r["decimals"]) == (symbol, decimals)
        coins_seen += len(rows)
    rpc.close()
    assert coins_seen > 0
    # Some balances are near 2**255: exact as text, and beyond a float's precision.
    assert any(
        b > 2**200 for balances in world.state.coin_balances.values() for b in balances.values()
    )


async def test_wallet_dividends_are_what_the_distributors_say(
    db: asyncpg.Connection, world: World
) -> None:
    with RpcClient(world.rpc_url) as rpc:
        dividends = read_dividends(rpc, world.state)
        some_claimable = False
        for label, user_id in world.users.items():
            rows = await run(db, "wallet_dividends", user_id)
            got = {
                (r["chain_id"], r["master_id"], r["distributor"], r["payment_token"]): (
                    int(r["claimed"]),
                    int(r["claimable"]),
                )
                for r in rows
            }
            assert len(got) == len(rows), label
            expected = chain_dividends(rpc, world, dividends, world.wallets[label])
            assert got == expected, label
            # The claimed amounts, summed over payment tokens, are the oracle's claim logs.
            for m in world.state.masters.values():
                logged = sum(
                    world.state.claims_by_holder.get((m.distributor, w), 0)
                    for w in world.wallets[label]
                )
                claimed = sum(v[0] for k, v in got.items() if k[2] == hx(m.distributor))
                assert claimed == logged, label
            some_claimable |= any(claimable > 0 for _, claimable in expected.values())
            if label == "two wallets":
                assert any(claimed > 0 for claimed, _ in expected.values())
                assert len({key[3] for key in expected}) > 1, "native and token dividends"
    assert some_claimable, "the fixture must leave unclaimed dividends to the users"


Dividends = dict[bytes, list[tuple[int, bytes, int]]]  # distributor -> (id, token, per share)


def read_dividends(rpc: RpcClient, state: ChainState) -> Dividends:
    """Every distributor's dividends, through dividendsCount() and dividends(id)."""
    distributors = [m.distributor for m in state.masters.values()]
    counts = eth_calls(
        rpc, [(d, c.encode_call("dividendsCount()")) for d in distributors], state.block
    )
    out: Dividends = {}
    for distributor, count in zip(distributors, counts, strict=True):
        n = int.from_bytes(ok(count), "big")
        calls = [(distributor, c.encode_call("dividends(uint256)", i)) for i in range(1, n + 1)]
        results = eth_calls(rpc, calls, state.block)
        out[distributor] = [
            (i, bytes.fromhex(token[2:]), per_share)
            for i, (token, per_share) in enumerate(
                (decode(["address", "uint256"], ok(r)) for r in results), start=1
            )
        ]
    assert sum(map(len, out.values())) >= 2
    return out


def chain_dividends(
    rpc: RpcClient, world: World, dividends: Dividends, wallets: list[bytes]
) -> dict[tuple[int, uuid.UUID, str, str], tuple[int, int]]:
    """(chain, master, distributor, token) -> (credited to the wallets, claimable by them):
    credited(holder, token) (nothing is withdrawn), and per live NFT of the wallets
    (ownerOf) each dividend with claimed(id, tokenId) false."""
    masters = world.state.masters
    claimable: Counter[tuple[bytes, bytes]] = Counter()
    pairs = [
        (m.distributor, token_id, dividend)
        for nft, m in masters.items()
        for token_id, owner in world.state.nft_owners[nft].items()
        if owner in wallets
        for dividend in dividends[m.distributor]
    ]
    calls = [(d, c.encode_call("claimed(uint256,uint256)", div[0], t)) for d, t, div in pairs]
    for (distributor, _, (_, token, per_share)), claimed in zip(
        pairs, eth_calls(rpc, calls, world.state.block), strict=True
    ):
        if not int.from_bytes(ok(claimed), "big"):
            claimable[(distributor, token)] += per_share
    credited: Counter[tuple[bytes, bytes]] = Counter()
    keys = [
        (m.distributor, token, holder)
        for m in masters.values()
        for token in {t for _, t, _ in dividends[m.distributor]}
        for holder in wallets
    ]
    calls = [(d, c.encode_call("credited(address,address)", h, t)) for d, t, h in keys]
    for (distributor, token, _), result in zip(
        keys, eth_calls(rpc, calls, world.state.block), strict=True
    ):
        credited[(distributor, token)] += int.from_bytes(ok(result), "big")
    master_of = {m.distributor: uuid.UUID(bytes=m.master_id) for m in masters.values()}
    return {
        (world.chain_id, master_of[d], hx(d), hx(t)): (credited[(d, t)], claimable[(d, t)])
        for d, t in credited.keys() | claimable.keys()
        if credited[(d, t)] or claimable[(d, t)]
    }


def ok(result: bytes | RpcError) -> bytes:
    if isinstance(result, RpcError):
        raise result
    return result


# Masters and coins.


async def test_master_holders_are_what_owner_of_says(db: asyncpg.Connection, world: World) -> None:
    for nft, master_id in world.master_of.items():
        held = Counter(world.state.nft_owners[nft].values())
        expected = sorted(((-n, owner) for owner, n in held.items()))
        rows = await run(db, "master_holders", master_id, 1000)
        assert [(-r["nfts_held"], bytes.fromhex(r["owner"][2:])) for r in rows] == expected
        assert {(r["chain_id"], r["contract"]) for r in rows} <= {(world.chain_id, hx(nft))}
        top = await run(db, "master_holders", master_id, 3)
        assert top == rows[:3]
    assert any(world.state.nft_owners.values())


async def test_master_ipo_progress_is_what_the_contracts_say(
    db: asyncpg.Connection, world: World
) -> None:
    for nft, master_id in world.master_of.items():
        info = world.state.masters[nft]
        (row,) = await run(db, "master_ipo_progress", master_id)
        minted = world.state.nft_minted[nft]
        burned = len(world.state.nft_burned[nft])
        assert row == row | {
            "chain_id": world.chain_id,
            "master_id": master_id,
            "nft_contract": hx(nft),
            "distributor": hx(info.distributor),
            "total_supply": str(info.total_supply),
            "minted": str(minted),
            "burned": str(burned),
            "outstanding": str(minted - burned),
            "holders": len(set(world.state.nft_owners[nft].values())),
            "ipo_status": world.ipo_latest[master_id],
        }
        # The IPO's copy of minted_supply, kept by the indexer, is the chain's too.
        assert row["ipo_minted_supply"] == str(minted)
    assert await run(db, "master_ipo_progress", world.not_deployed) == []
    assert any(world.state.nft_burned.values()), "the workload should have burned NFTs"


async def test_nft_history_is_the_tokens_transfer_logs(
    db: asyncpg.Connection, world: World
) -> None:
    with RpcClient(world.rpc_url) as rpc:
        checked = 0
        for nft in world.state.masters:
            live = sorted(world.state.nft_owners[nft])
            for token_id in [*live[:1], *sorted(world.state.nft_burned[nft])[:1]]:
                logs = rpc.call(
                    "eth_getLogs",
                    [
                        {
                            "address": hx(nft),
                            "fromBlock": "0x0",
                            "toBlock": hex(world.state.block),
                            "topics": [
                                TRANSFER,
                                None,
                                None,
                                "0x" + token_id.to_bytes(32, "big").hex(),
                            ],
                        }
                    ],
                )
                expected = [
                    (
                        int(log["blockNumber"], 16),
                        int(log["logIndex"], 16),
                        log["transactionHash"],
                        "0x" + log["topics"][1][-40:],
                        "0x" + log["topics"][2][-40:],
                    )
                    for log in logs
                ]
                rows = await history(db, world.chain_id, hx(nft), token_id, page=2)
                got = [
                    (
                        r["block_number"],
                        r["log_index"],
                        r["tx_hash"],
                        r["from_address"],
                        r["to_address"],
                    )
                    for r in rows
                ]
                assert got == expected
                owner = world.state.nft_owners[nft].get(token_id, ZERO)
                assert rows[-1]["to_address"] == hx(owner)
                assert [r["kind"] for r in rows] == [kind(e[3], e[4]) for e in expected]
                assert (rows[0]["kind"], rows[-1]["kind"] == "burn") == ("mint", owner == ZERO)
                checked += len(rows) > 2
    assert checked > 0, "some NFT should have a history longer than a page"


def kind(from_: str, to: str) -> str:
    return "mint" if from_ == hx(ZERO) else "burn" if to == hx(ZERO) else "transfer"


async def history(
    conn: asyncpg.Connection, chain_id: int, contract: str, token_id: int, *, page: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = (-1, -1)
    while True:
        got = await run(conn, "nft_history", chain_id, contract, str(token_id), *after, page)
        rows += got
        if len(got) < page:
            return rows
        after = (got[-1]["block_number"], got[-1]["log_index"])


async def test_coin_top_holders_are_the_largest_balances(
    db: asyncpg.Connection, world: World
) -> None:
    for token, balances in world.state.coin_balances.items():
        expected = sorted((-b, holder) for holder, b in balances.items() if b > 0)
        rows = await run(db, "coin_top_holders", world.chain_id, hx(token), 5)
        got = [(-int(r["balance"]), bytes.fromhex(r["holder"][2:])) for r in rows]
        assert got == expected[:5]
        assert {r["token"] for r in rows} <= {hx(token)}
        # The address may be given in any case: the conversion is on the parameter side.
        upper = "0x" + token.hex().upper()
        assert await run(db, "coin_top_holders", world.chain_id, upper, 5) == rows


# The marketplace.


async def test_marketplace_lists_published_masters_with_their_ownership(
    db: asyncpg.Connection, world: World
) -> None:
    rows: list[dict[str, Any]] = []
    cursor: tuple[str, uuid.UUID] = FIRST_MARKET_PAGE
    while True:
        got = await run(db, "marketplace_listing", *cursor, 2)
        rows += got
        if len({r["master_id"] for r in got}) < 2:
            break
        cursor = (got[-1]["created_at"], got[-1]["master_id"])
    assert [r["master_id"] for r in rows] == world.published
    nft_of = {m: nft for nft, m in world.master_of.items()}
    for r in rows:
        master_id = r["master_id"]
        assert (r["artist_name"], r["ipo_status"]) == (
            "The Artist",
            world.ipo_status.get(master_id),
        )
        if r["ipo_status"] is not None:
            assert r["ipo_mint_price"] == "12345678901234567890123"
            assert r["ipo_payment_token"] == hx(ZERO)
        if master_id == world.not_deployed:
            assert (r["chain_id"], r["nft_contract"], r["holders"]) == (None, None, None)
            continue
        nft = nft_of[master_id]
        minted = world.state.nft_minted[nft]
        assert r["chain_id"] == world.chain_id
        assert (r["nft_contract"], r["distributor"]) == (
            hx(nft),
            hx(world.state.masters[nft].distributor),
        )
        assert (r["total_supply"], r["minted"], r["burned"]) == (
            str(world.state.masters[nft].total_supply),
            str(minted),
            str(len(world.state.nft_burned[nft])),
        )
        assert r["holders"] == len(set(world.state.nft_owners[nft].values()))
        assert r["ipo_minted_supply"] in (None, str(minted))


# The backend's own side: TypeScript with the generated Drizzle schema and `postgres`.

ROOT = QUERIES_DIR.parents[1]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TS_OUT = ROOT / "node_modules" / ".cache" / "audifi-drizzle"
TS_TIMEOUT_S = 180.0


def _as_asyncpg_gives(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[Any]:
    """postgres-js under drizzle gives int8 and timestamps as strings: read them back as
    asyncpg types, so that the comparison is exact (microseconds included)."""

    def value(like: Any, raw: Any) -> Any:
        if raw is None or like is None:
            return raw
        if isinstance(like, datetime):
            return datetime.fromisoformat(raw)
        return type(like)(raw) if isinstance(like, int | uuid.UUID) else raw

    if len(expected) != len(got):
        return got
    return [
        {k: value(e.get(k), v) for k, v in g.items()} for e, g in zip(expected, got, strict=True)
    ]


def _typescript(request: dict[str, Any]) -> dict[str, Any]:
    """Compile sql/drizzle with tsc and run the check on `request`; its JSON answer."""
    compiled = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "tsc"), "-p", "sql/drizzle"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TS_TIMEOUT_S,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = subprocess.run(
        ["node", str(TS_OUT / "check" / "run-queries.js")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=TS_TIMEOUT_S,
    )
    assert ran.returncode == 0, ran.stderr
    answer: dict[str, Any] = json.loads(ran.stdout)
    return answer


async def test_the_backend_runs_every_query_from_typescript_with_the_generated_schema(
    db: asyncpg.Connection, world: World
) -> None:
    """sql/drizzle/check/run-queries.ts (only the generated schema, drizzle-orm and the
    `postgres` driver) gets what asyncpg gets for every query, and its typed Drizzle query
    of the wallets' NFTs is what ownerOf says."""
    label = "two wallets"
    user_id = str(world.users[label])
    master_id = str(world.published[-1])
    nft, owners = next((n, o) for n, o in world.state.nft_owners.items() if o)
    token = next(t for t, b in world.state.coin_balances.items() if b)
    calls: dict[str, list[Any]] = {
        "wallet_nfts": [user_id, 0, "0x", "-1", 1000],
        "wallet_coin_balances": [user_id, 1000],
        "wallet_dividends": [user_id],
        "master_holders": [str(world.master_of[nft]), 1000],
        "master_ipo_progress": [master_id],
        "nft_history": [world.chain_id, hx(nft), str(min(owners)), -1, -1, 1000],
        "coin_top_holders": [world.chain_id, hx(token), 20],
        "marketplace_listing": [FIRST_MARKET_PAGE[0], str(FIRST_MARKET_PAGE[1]), 100],
    }
    assert set(calls) == QUERY_NAMES
    wallets = [hx(w) for w in world.wallets[label]]
    request = {
        "databaseUrl": world.url,
        "queriesDir": str(QUERIES_DIR),
        "calls": [{"name": n, "params": p} for n, p in calls.items()],
        "wallets": wallets,
    }
    answer = await asyncio.to_thread(_typescript, request)
    for name, params in calls.items():
        expected = await run(db, name, *_asyncpg_params(QUERIES[name], params))
        assert expected, f"{name}: the fixture must give it rows to compare"
        assert _as_asyncpg_gives(expected, answer["queries"][name]) == expected, name
    mine = set(world.wallets[label])
    owned = answer["owned"]
    assert sorted(
        (r["contract"], int(r["tokenId"]), r["owner"]) for r in answer["owned"]
    ) == sorted(
        (hx(n), t, hx(o))
        for n, by_token in world.state.nft_owners.items()
        for t, o in by_token.items()
        if o in mine
    )
    assert owned, "the wallets must own NFTs"


def _asyncpg_params(query: Query, params: list[Any]) -> list[Any]:
    """The JSON parameters as asyncpg wants them (it types a uuid parameter strictly)."""
    return [
        uuid.UUID(v) if p.type == "uuid" else v for p, v in zip(query.params, params, strict=True)
    ]
