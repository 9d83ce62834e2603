"""Nodes for the fault tests beyond RpcProxy's faults: a node that lies in ways the proxy
does not stage (Tamper), a proxy that counts the calls reaching the node, and proxies
serving from a thread of their own for tests that drive the daemon as a subprocess.

Every server started here is stopped here, by its handle."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web

from tests.helpers.proxy import RpcProxy

T = TypeVar("T")


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
    upstream: str, n: int = 1, *, kind: type[RpcProxy] = RpcProxy, **kwargs: Any
) -> Iterator[tuple[LoopThread, list[RpcProxy]]]:
    """`n` proxies (RpcProxy, or `kind`) in front of `upstream`, serving from a thread of
    their own."""
    thread = LoopThread()
    started: list[RpcProxy] = []
    seed = kwargs.pop("seed", 0)
    try:
        for i in range(n):
            proxy = kind(upstream, seed=seed + i, **kwargs)
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


@dataclass
class Tamper:
    """A JSON-RPC node in front of `upstream` that damages eth_getLogs answers holding at
    least one log: the next ones, as scripted, or at random (`lie`). The damage: `wrong_hash`
    (a log names another block hash), `duplicate` (one log twice, in a row), `duplicate_apart`
    (the first log again at the end), `removed` (a log marked removed), `outside` (a log moved
    past the asked range), `empty` (no logs at all), `drop_last` (the last log left out), or
    one log that cannot be parsed: `missing_field` (no transactionHash), `bad_hex` (data is
    not hex), `topics_not_list`. Answers by block hash are never damaged.

    `hide(addresses)` makes contracts vanish instead: their logs, and every log that
    names them (their deployment), are left out of every answer that keeps another log
    (an answer left empty could be caught by the blooms)."""

    upstream: str
    scripts: list[tuple[str, int]] = field(default_factory=list)
    fired: Counter[str] = field(default_factory=Counter)
    lies: tuple[str, ...] = ()
    one_in: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    hidden: frozenset[str] = frozenset()
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def script(self, kind: str, times: int = 1) -> None:
        assert kind in _DAMAGE, kind
        self.scripts.append((kind, times))

    def lie(self, kinds: tuple[str, ...], *, one_in: int, seed: int = 0) -> None:
        """Damage each non-empty answer with probability 1/`one_in`, in one of `kinds`
        drawn at random (0 turns lying off)."""
        assert all(kind in _DAMAGE for kind in kinds), kinds
        self.lies, self.one_in, self.rng = kinds, one_in, random.Random(seed)

    def hide(self, addresses: set[bytes]) -> None:
        self.hidden = frozenset(a.hex() for a in addresses)

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
        batch = isinstance(calls, list)
        items = payload if isinstance(payload, list) else [payload]
        by_id = {item.get("id"): item for item in items if isinstance(item, dict)}
        for call in calls if batch else [calls]:
            answered = by_id.get(call.get("id"))
            if call.get("method") == "eth_getLogs" and answered and self._damage(call, answered):
                break
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    def _damage(self, call: dict[str, Any], answer: dict[str, Any]) -> bool:
        logs = answer.get("result")
        if not isinstance(logs, list) or not logs or "blockHash" in call["params"][0]:
            return False
        if self.hidden:
            kept = [g for g in logs if not self._names_hidden(g)]
            if kept and len(kept) < len(logs):
                answer["result"] = kept
                self.fired["hide"] += len(logs) - len(kept)
            return False
        kind = self._next_kind()
        if kind is None:
            return False
        answer["result"] = _DAMAGE[kind](call["params"][0], [dict(g) for g in logs])
        self.fired[kind] += 1
        return True

    def _names_hidden(self, log: dict[str, Any]) -> bool:
        text = (log["address"][2:] + log["data"] + "".join(log["topics"])).lower()
        return any(address in text for address in self.hidden)

    def _next_kind(self) -> str | None:
        if self.scripts:
            kind, times = self.scripts[0]
            self.scripts[0] = (kind, times - 1)
            if times == 1:
                self.scripts.pop(0)
            return kind
        if self.one_in and self.rng.randrange(self.one_in) == 0:
            return self.rng.choice(self.lies)
        return None


def _wrong_hash(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = logs[0]["blockHash"]
    logs[0]["blockHash"] = first[:-2] + ("00" if first[-2:] != "00" else "01")
    return logs


def _duplicate(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [logs[0], *logs]


def _duplicate_apart(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*logs, logs[0]] if len(logs) > 1 else [logs[0], logs[0]]


def _empty(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return []


def _drop_last(_: dict[str, Any], logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return logs[:-1]


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
    "duplicate_apart": _duplicate_apart,
    "empty": _empty,
    "drop_last": _drop_last,
    "removed": _removed,
    "outside": _outside,
    "missing_field": _missing_field,
    "bad_hex": _bad_hex,
    "topics_not_list": _topics_not_list,
}
