"""What the fault tests share: a chain with activity and reorgs, proxies on a thread of
their own (for tests that drive the daemon as a subprocess), a tampering node for the
inconsistencies the proxy cannot stage, and the checks that nothing was lost or doubled.

Every process and server started here is stopped here, by PID or by its handle."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from indexer.backfill import backfill
from indexer.config import Settings, load_settings
from indexer.devchain.workload import WorkloadConfig
from indexer.service import open_pipeline
from indexer.store.revert import RAW_TABLES
from tests.helpers import livechain, pg
from tests.helpers.chain import Chain
from tests.helpers.chainstate import mismatches, oracle, snapshot
from tests.helpers.livechain import Activity as Activity
from tests.helpers.livechain import LiveChain
from tests.helpers.proxy import RpcProxy

T = TypeVar("T")

# Raw tables keyed by (chain_id, tx_hash, log_index); a second row for one log under
# another key would be a duplicate the primary key cannot see.
RAW_EVENT_TABLES = tuple(t for t in RAW_TABLES if t != "indexer_quarantine")


def small_config(seed: int) -> WorkloadConfig:
    """Few contracts, small blocks: many blocks for few events, so ranges matter."""
    return WorkloadConfig(seed=seed, masters=3, artists=3, txs_per_block=2, max_events_per_tx=20)


def live_chain(seed: int, events: int) -> AbstractContextManager[LiveChain]:
    return livechain.live_chain(small_config(seed), events)


class LoopThread:
    """An event loop on its own thread, for servers a synchronous test needs running
    while it waits on a subprocess."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="proxies", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop's thread (the proxies are not thread-safe)."""

        async def invoke() -> T:
            return fn()

        return self.run(invoke())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def proxies_on_a_thread(
    upstream: str, n: int = 1, **kwargs: Any
) -> Iterator[tuple[LoopThread, list[RpcProxy]]]:
    """`n` RpcProxy in front of `upstream`, serving from a thread of their own."""
    thread = LoopThread()
    started: list[RpcProxy] = []
    seed = kwargs.pop("seed", 0)
    try:
        for i in range(n):
            proxy = RpcProxy(upstream, seed=seed + i, **kwargs)
            thread.run(proxy.start())
            started.append(proxy)
        yield thread, started
    finally:
        for proxy in started:
            thread.run(proxy.stop())
        thread.close()


class CountingProxy(RpcProxy):
    """An RpcProxy that also counts, per JSON-RPC method, the calls that reached the node."""

    def __init__(self, upstream: str, **kwargs: Any) -> None:
        super().__init__(upstream, **kwargs)
        self.methods: Counter[str] = Counter()

    async def _exchange(self, items: list[dict[str, Any]], lag: int, plan: Any) -> Any:
        self.methods.update(str(item.get("method")) for item in items)
        return await super()._exchange(items, lag, plan)


# --- a node that lies in ways the proxy does not stage ----------------------------------


@dataclass
class Tamper:
    """A JSON-RPC node in front of `upstream` that damages the next eth_getLogs answers
    that hold at least one log, as scripted: `wrong_hash` (a log names another block
    hash), `duplicate` (one log twice), `removed` (a log marked removed), `outside`
    (a log moved past the asked range), or one log that cannot be parsed:
    `missing_field` (no transactionHash), `bad_hex` (data is not hex), `topics_not_list`."""

    upstream: str
    scripts: list[tuple[str, int]] = field(default_factory=list)
    fired: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def script(self, kind: str, times: int = 1) -> None:
        assert kind in _DAMAGE, kind
        self.scripts.append((kind, times))

    async def __aenter__(self) -> Tamper:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            payload = orjson.loads(await answer.read())
        calls = orjson.loads(body)
        if isinstance(calls, list) and isinstance(payload, list):
            by_id = {item["id"]: item for item in payload}
            for call in calls:
                if call.get("method") == "eth_getLogs" and self._damage(call, by_id[call["id"]]):
                    break
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    def _damage(self, call: dict[str, Any], answer: dict[str, Any]) -> bool:
        logs = answer.get("result")
        if not self.scripts or not isinstance(logs, list) or not logs:
            return False
        if "blockHash" in call["params"][0]:
            return False
        kind, times = self.scripts[0]
        self.scripts[0] = (kind, times - 1)
        if times == 1:
            self.scripts.pop(0)
        answer["result"] = _DAMAGE[kind](call["params"][0], [dict(g) for g in logs])
        self.fired[kind] += 1
        return True


def _wrong_hash(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = logs[0]["blockHash"]
    logs[0]["blockHash"] = first[:-2] + ("00" if first[-2:] != "00" else "01")
    return logs


def _duplicate(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [logs[0], *logs]


def _removed(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs[-1]["removed"] = True
    return logs


def _outside(log_filter: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs[-1]["blockNumber"] = hex(int(log_filter["toBlock"], 16) + 1)
    return logs


def _missing_field(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    del logs[-1]["transactionHash"]
    return logs


def _bad_hex(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs[-1]["data"] = "0xnot-hex"
    return logs


def _topics_not_list(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs[-1]["topics"] = 7
    return logs


_DAMAGE: dict[str, Callable[[dict[str, Any], list[dict[str, Any]]], list[dict[str, Any]]]] = {
    "wrong_hash": _wrong_hash,
    "duplicate": _duplicate,
    "removed": _removed,
    "outside": _outside,
    "missing_field": _missing_field,
    "bad_hex": _bad_hex,
    "topics_not_list": _topics_not_list,
}


# --- checks -------------------------------------------------------------------------------


def settings(
    database_url: str, chain: Chain, rpc_urls: Sequence[str] = (), **extra: Any
) -> Settings:
    """Settings for an in-process pipeline on `chain`, through `rpc_urls` when given."""
    return load_settings(
        database_url=database_url,
        rpc_url=chain.url,
        rpc_urls=list(rpc_urls),
        factory_address="0x" + chain.factory.hex(),
        start_block=chain.factory_block,
        **extra,
    )


async def backfill_to(database_url: str, chain: Chain, head: int, **extra: Any) -> None:
    """Index [factory block, head] straight from anvil (a clean reference)."""
    async with open_pipeline(settings(database_url, chain, **extra)) as p:
        await backfill(p, chain.factory_block, head, head=head, concurrency=2)


async def reference(url: str, chain: Chain, head: int) -> dict[str, list[tuple[Any, ...]]]:
    """What a clean backfill to `head` stores: every indexed table, sorted."""
    await backfill_to(url, chain, head)
    return await snapshot(url)


@contextmanager
def reference_database(
    live: LiveChain, databases: pg.Databases, template_db: str
) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """A clean backfill of the live chain into a database of its own, checked against the
    chain: the snapshot a faulty run must end equal to."""
    name = databases.create(template=template_db)
    try:
        url = databases.url(name)
        state = databases.run(reference(url, live.chain, live.head()))
        assert databases.run(mismatches(url, oracle(live.chain.url, live.chain.factory))) == []
        yield state
    finally:
        databases.drop(name)


async def duplicates(url: str) -> dict[str, int]:
    """Raw tables holding one log (block, log index) more than once; {} when none does."""
    conn = await asyncpg.connect(url)
    try:
        found = {}
        for table in RAW_EVENT_TABLES:
            n = await conn.fetchval(
                f"select count(*) - count(distinct (chain_id, block_number, log_index)) "
                f"from {table}"
            )
            if n:
                found[table] = n
        return found
    finally:
        await conn.close()


async def checkpoint(url: str) -> tuple[int, bytes] | None:
    """The stored checkpoint (block, hash), None before the first."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("select block_number, block_hash from indexer_checkpoints")
    finally:
        await conn.close()
    return None if row is None else (row[0], bytes(row[1]))


_WRITTEN = "select (select max(block_number) from indexer_checkpoints), " + " + ".join(
    f"(select count(*) from {table})" for table in RAW_TABLES
)


async def written(db: str | asyncpg.Pool) -> tuple[int | None, int]:
    """(checkpoint block, raw rows): what a step that must write nothing must leave alone."""
    if isinstance(db, asyncpg.Pool):
        row = await db.fetchrow(_WRITTEN)
    else:
        conn = await asyncpg.connect(db)
        try:
            row = await conn.fetchrow(_WRITTEN)
        finally:
            await conn.close()
    assert row is not None
    return row[0], int(row[1])


def login_url(database_url: str, login: str, password: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{login}:{password}@{host}").geturl()


async def new_login(admin: str, role: str) -> tuple[str, str]:
    """A fresh login that is a member of `role`: (name, password). Drop it with drop_login."""
    login = f"audifi_test_{role.removeprefix('audifi_')}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    await _admin(admin, f"create role {login} login password '{password}' in role {role}")
    return login, password


async def drop_login(admin: str, login: str) -> None:
    await _admin(admin, f"drop role if exists {login}")


async def limit_connections(admin: str, login: str, limit: int) -> None:
    """Lock `login` out (0) or let it back in (-1); sessions it has keep running."""
    await _admin(admin, f"alter role {login} connection limit {int(limit)}")


async def _admin(admin: str, statement: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
