"""A fault-injecting JSON-RPC proxy between the indexer and a real node.

Tests point the indexer at `proxy.url`. The proxy forwards every call to the
node and, as scripted or at random, answers the way failing providers and load
balancers do: HTTP errors, resets, stalls, broken bodies, wrong or missing
batch items, refused eth_getLogs ranges and a head that lags or flaps. Faults
are decided when a request arrives, from a seeded RNG, so a sequential client
sees the same faults for the same seed. `hosted()` makes it a hosted provider's
plan: latency on every request and HTTP 429 above a rate of calls.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import orjson
from aiohttp import web

from .faults import (
    Fault,
    FaultSettings,
    JsonObj,
    Scope,
    apply_batch_fault,
    apply_item_fault,
    corrupt_body,
    status_reply,
)
from .limits import LimitError, LogLimit, limit_error
from .nodeview import VIEW_METHODS, Call, conceal, enforce, error, prepare

_UPSTREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=30)
_JSON: Final = {"Content-Type": "application/json"}


@dataclass(slots=True)
class ProxyStats:
    """What the proxy did, so that a test can assert a fault really happened."""

    requests: int = 0  # HTTP requests received
    forwarded: int = 0  # HTTP requests that reached the node
    refused: int = 0  # eth_getLogs calls refused by the emulated limit
    lagged: int = 0  # calls answered by a lagging replica (`lagging_items`)
    rate_limited: int = 0  # HTTP requests answered 429 by the rate limit (`hosted`)
    calls: int = 0  # JSON-RPC calls received (a batch of k counts k)
    # Calls accepted and refused per second since the first request (`hosted`).
    accepted_per_s: Counter[int] = field(default_factory=Counter)
    refused_per_s: Counter[int] = field(default_factory=Counter)
    injected: Counter[Fault] = field(default_factory=Counter)


# What Alchemy answers above a plan's throughput (HTTP 429, no Retry-After).
RATE_LIMITED_BODY: Final = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": 429,
            "message": "Your app has exceeded its compute units per second capacity. If you "
            "have retries enabled, you can safely ignore this message.",
        },
    }
)


@dataclass(slots=True)
class _Bucket:
    """Calls per second a hosted plan allows: a token bucket holding one second of calls."""

    rate: float
    tokens: float
    at: float

    def take(self, calls: int, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < calls:
            return False
        self.tokens -= calls
        return True


@dataclass(slots=True)
class _Script:
    fault: Fault
    remaining: int
    method: str | None

    def matches(self, method: str) -> bool:
        return self.method in (None, method) and self.fault.fits(method)


@dataclass(slots=True)
class _Plan:
    """The faults one HTTP request will suffer."""

    http: Fault | None = None
    batch: Fault | None = None
    items: dict[int, Fault] = field(default_factory=dict)

    def faults(self) -> list[Fault]:
        chosen = [self.http, self.batch, *self.items.values()]
        return [fault for fault in chosen if fault is not None]


def _parse(raw: bytes) -> tuple[list[JsonObj], bool] | None:
    """The calls of a request and whether it was a batch; None if it is not JSON-RPC."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    batch = isinstance(payload, list)
    items = payload if batch else [payload]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    return items, batch


def _applicable(fault: Fault, methods: Sequence[str], batch: bool) -> bool:
    if fault.scope is Scope.BATCH:
        return batch and len(methods) > 1
    if fault.scope is Scope.ITEM:
        return any(fault.fits(method) for method in methods)
    return True


class RpcProxy:
    """An HTTP JSON-RPC proxy on 127.0.0.1 that injects faults in front of `upstream`.

    Start it once (`start()` or `async with`); `stop()` closes the listener and
    ends requests it is holding, so nothing outlives it.
    """

    def __init__(
        self, upstream: str, *, seed: int = 0, settings: FaultSettings | None = None
    ) -> None:
        self.upstream = upstream
        self.settings = settings or FaultSettings()
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._scripts: list[_Script] = []
        self._rate = 0.0
        self._random_faults: tuple[Fault, ...] = ()
        self._limit: LogLimit | None = None
        self._lag = 0
        self._flap = (0, 1)  # (blocks behind, requests per node)
        self._item_lag = (0, 0.0)  # (blocks behind, share of the calls served that far behind)
        self._flap_count = 0
        self._latency = 0.0
        self._bucket: _Bucket | None = None
        self._started_at: float | None = None
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """Where the client under test sends its requests."""
        return f"http://127.0.0.1:{self._port}/"

    @property
    def pending(self) -> int:
        """Scripted faults that have not fired yet."""
        return sum(script.remaining for script in self._scripts)

    async def start(self) -> None:
        """Listen on a free port; `url` is valid once this returns."""
        self._session = aiohttp.ClientSession(timeout=_UPSTREAM_TIMEOUT)
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and drop held requests; idempotent."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def script(self, fault: Fault, *, times: int = 1, method: str | None = None) -> None:
        """Inflict `fault` on the next `times` requests that match `method` (any if None).

        Scripts fire oldest first; an HTTP fault hits a request containing a
        matching call, a batch fault a batch of two or more, an item fault a
        matching call inside a single request or a batch.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        self._scripts.append(_Script(fault, times, method))

    def randomize(self, rate: float, faults: Iterable[Fault] = ()) -> None:
        """Inflict one of `faults` on each request with probability `rate` (0 turns it off).

        Only requests no scripted fault hits are eligible; the fault is drawn
        among those that can apply to the request.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        self._rate = rate
        self._random_faults = tuple(faults)

    def limit_get_logs(
        self,
        *,
        max_range: int | None = None,
        max_results: int | None = None,
        error: LimitError | None = None,
    ) -> None:
        """Refuse eth_getLogs calls over the limits with `error` (Alchemy's by default).

        With neither limit the emulation is off. Calls by blockHash or with
        safe/finalized bounds are never refused.
        """
        if max_range is None and max_results is None:
            self._limit = None
            return
        self._limit = LogLimit(error or limit_error("alchemy"), max_range, max_results)

    def hosted(self, *, latency_s: float, calls_per_second: float | None = None) -> None:
        """Behave like a hosted provider's plan: every request waits `latency_s` before it
        is answered, and calls over `calls_per_second` (each call of a batch counts, as
        providers count them; one second of burst) get HTTP 429 without being served.
        Combine with `limit_get_logs` for the plan's range and result caps."""
        self._latency = latency_s
        loop_time = asyncio.get_running_loop().time()
        self._bucket = (
            None
            if calls_per_second is None
            else _Bucket(calls_per_second, calls_per_second, loop_time)
        )

    def lagging(self, blocks: int) -> None:
        """Serve a node `blocks` behind: a lower head, null above it, getLogs past it refused."""
        self._lag = max(0, blocks)

    def lagging_items(self, blocks: int, *, share: float) -> None:
        """Serve each call of a request, independently with probability `share`, from a
        node `blocks` behind: a load balancer that spreads one batch over replicas."""
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be within [0, 1]")
        self._item_lag = (max(0, blocks), share)

    def flapping_head(self, blocks: int, *, every: int = 1) -> None:
        """Alternate between the real head and one `blocks` behind, every `every` requests.

        Like two nodes behind a load balancer: each request sees one node
        consistently, the head moves back and forth between requests.
        """
        if every < 1:
            raise ValueError("every must be at least 1")
        self._flap = (max(0, blocks), every)
        self._flap_count = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one HTTP request; a node that fails or answers garbage gives a 502."""
        self.stats.requests += 1
        try:
            return await self._serve(request)
        except (aiohttp.ClientError, orjson.JSONDecodeError):
            return web.Response(status=502, text="upstream unavailable")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        """Plan the request's faults, forward it, then damage the answer."""
        raw = await request.read()
        parsed = _parse(raw)
        if parsed is None:
            return await self._pass_through(raw)
        items, batch = parsed
        self.stats.calls += len(items)
        if self._latency and await self._pause(self._latency):
            return self._reset(request)
        if self._bucket is not None and not self._within_rate(len(items)):
            return web.Response(status=429, body=RATE_LIMITED_BODY, content_type="application/json")
        plan = self._plan([str(item.get("method")) for item in items], batch)
        lag = self._next_lag()
        if plan.http is not None:
            early = await self._http_fault(request, plan.http)
            if early is not None:
                return early
        self.stats.forwarded += 1
        calls = await self._exchange(items, lag, plan)
        responses = [call.answer for call in calls if call.answer is not None]
        if plan.batch is not None:
            responses = apply_batch_fault(plan.batch, responses)
        body = orjson.dumps(responses if batch else responses[0])
        if plan.http is not None:
            body = corrupt_body(plan.http, body)
        status = 200 if batch else calls[0].status
        return web.Response(body=body, status=status, content_type="application/json")

    def _plan(self, methods: list[str], batch: bool) -> _Plan:
        """Pick this request's faults: scripted ones first, else maybe a random one."""
        plan = _Plan(http=self._take(Scope.HTTP, methods))
        if plan.http in (None, Fault.SLOW):
            if batch and len(methods) > 1:
                plan.batch = self._take(Scope.BATCH, methods)
            for index, method in enumerate(methods):
                fault = self._take(Scope.ITEM, [method])
                if fault is not None:
                    plan.items[index] = fault
        # Draw for every request, hit or not, so the sequence depends on the seed only.
        if self._rate and self._rng.random() < self._rate and not plan.faults():
            self._add_random(plan, methods, batch)
        self.stats.injected.update(plan.faults())
        return plan

    def _take(self, scope: Scope, methods: Sequence[str]) -> Fault | None:
        """Fire the oldest scripted fault of `scope` that matches one of `methods`."""
        for script in self._scripts:
            if script.fault.scope is scope and any(script.matches(m) for m in methods):
                script.remaining -= 1
                if script.remaining == 0:
                    self._scripts.remove(script)
                return script.fault
        return None

    def _add_random(self, plan: _Plan, methods: list[str], batch: bool) -> None:
        candidates = [f for f in self._random_faults if _applicable(f, methods, batch)]
        if not candidates:
            return
        fault = self._rng.choice(candidates)
        if fault.scope is Scope.HTTP:
            plan.http = fault
        elif fault.scope is Scope.BATCH:
            plan.batch = fault
        else:
            targets = [i for i, method in enumerate(methods) if fault.fits(method)]
            plan.items[self._rng.choice(targets)] = fault

    def _within_rate(self, calls: int) -> bool:
        assert self._bucket is not None
        now = asyncio.get_running_loop().time()
        self._started_at = now if self._started_at is None else self._started_at
        second = int(now - self._started_at)
        if self._bucket.take(calls, now):
            self.stats.accepted_per_s[second] += calls
            return True
        self.stats.rate_limited += 1
        self.stats.refused_per_s[second] += calls
        return False

    def _next_lag(self) -> int:
        """How far behind the node serving this request is."""
        blocks, every = self._flap
        behind = blocks if (self._flap_count // every) % 2 else 0
        if blocks:
            self._flap_count += 1
        return self._lag + behind

    async def _http_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        """The answer to a request hit by an HTTP fault; None to go on forwarding it."""
        reply = status_reply(fault, self.settings)
        if reply is not None:
            status, headers, text = reply
            return web.Response(status=status, headers=headers, text=text)
        if fault is Fault.READ_TIMEOUT:
            await self._pause(self.settings.hold_s)
            return self._reset(request)
        if fault is Fault.RESET:
            return self._reset(request)
        if fault is Fault.SLOW and await self._pause(self.settings.slow_s):
            return self._reset(request)
        return None

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds`, cut short by stop(); True if the proxy is stopping."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        """Abort the connection with a TCP RST; the returned response is never sent."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=499)

    async def _exchange(self, items: list[JsonObj], lag: int, plan: _Plan) -> list[Call]:
        """Complete every call's answer: from the node, the lagging view, the limit, the faults."""
        limit = self._limit
        head = await self._visible_head(items, lag, limit)
        heads = self._item_heads(items, head)
        calls = [prepare(item, h) for item, h in zip(items, heads, strict=True)]
        await self._forward([call for call in calls if call.answer is None])
        for index, (item, call) in enumerate(zip(items, calls, strict=True)):
            answer = {**self._as_served(call, heads[index], limit), "id": item.get("id")}
            fault = plan.items.get(index)
            if fault is not None:
                answer = apply_item_fault(fault, answer, self.settings)
            call.answer = answer
        return calls

    def _as_served(self, call: Call, head: int | None, limit: LogLimit | None) -> JsonObj:
        """The node's answer as the lagging or limited node would give it."""
        answer = call.answer or error(-32603, "no answer from the node")
        if head is not None:
            answer = conceal(call, answer, head)
        refusal = None if limit is None else enforce(limit, call, answer)
        if limit is None or refusal is None:
            return answer
        self.stats.refused += 1
        call.status = limit.error.status
        return refusal

    def _item_heads(self, items: list[JsonObj], head: int | None) -> list[int | None]:
        """The head each call sees: the request's, or (drawn per call) a lagging replica's."""
        blocks, share = self._item_lag
        if head is None or not blocks:
            return [head] * len(items)
        heads: list[int | None] = []
        for item in items:
            lags = item.get("method") in VIEW_METHODS and self._rng.random() < share
            self.stats.lagged += lags
            heads.append(max(0, head - blocks) if lags else head)
        return heads

    async def _visible_head(
        self, items: list[JsonObj], lag: int, limit: LogLimit | None
    ) -> int | None:
        """The head this request may see; None when no call needs rewriting."""
        methods = {item.get("method") for item in items}
        lagging = (lag > 0 or self._item_lag[0] > 0) and not methods.isdisjoint(VIEW_METHODS)
        if not lagging and (limit is None or "eth_getLogs" not in methods):
            return None
        answer = await self._post({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})
        return max(0, int(answer["result"], 16) - lag)

    async def _forward(self, calls: list[Call]) -> None:
        """Send `calls` to the node as one batch and attach each answer to its call."""
        if not calls:
            return
        answers = await self._post([{**call.request, "id": n} for n, call in enumerate(calls)])
        by_id = {answer.get("id"): answer for answer in answers if isinstance(answer, dict)}
        for n, call in enumerate(calls):
            call.answer = by_id.get(n)

    async def _post(self, payload: Any) -> Any:
        async with self._require_session().post(
            self.upstream, data=orjson.dumps(payload), headers=_JSON
        ) as response:
            return orjson.loads(await response.read())

    async def _pass_through(self, raw: bytes) -> web.Response:
        """Forward a body that is not JSON-RPC untouched, and the node's answer back."""
        self.stats.forwarded += 1
        async with self._require_session().post(self.upstream, data=raw, headers=_JSON) as answer:
            body = await answer.read()
            return web.Response(body=body, status=answer.status, content_type="application/json")

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("RpcProxy is not started")
        return self._session
