"""Async JSON-RPC over HTTP: keep-alive, batches, per-request retries, fail-over.

This is one of the two places that retry (the other is the driver loop).
`is_retryable` alone decides; backoff is exponential with a cap and jitter,
and a server's Retry-After is honoured.

Several URLs are several replicas of one node. Each request goes to the first
URL (in configured order) that is healthy and known to have the block the
request needs; a failing URL rests (exponentially longer, capped) and is
tried again after, so traffic fails back to the first URL once it recovers.
A URL that turns out to lack a block is marked behind and the request moves
on to one that has it; it is used again once it reports a high enough head.
Each URL's calls are paced by its AdaptiveRate (indexer/ratelimit.py): a provider
that says "too many requests" is asked more slowly from then on, not retried into.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from indexer import metrics
from indexer.errors import NotReady, RangeTooLarge, RpcError, RpcUnavailable
from indexer.limits import is_rate_limit, parse_limit_error
from indexer.pacing import BackoffPolicy
from indexer.ratelimit import AdaptiveRate

log = structlog.get_logger("rpc")

Call = tuple[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Reverted:
    """A call the node executed and that reverted: an answer, with `reverts_as_results`."""

    message: str


_FATAL_CODES = {-32600, -32601, -32602}
# Refusals that mean "this node does not have that block (yet)": a replica behind, or a
# node in the middle of a reorg (anvil: "BlockOutOfRangeError: block height is 13 but
# requested was 16"). Waited out, never fatal, whatever the code.
_NOT_THERE_YET = (
    "beyond current head",
    "unknown block",
    "header not found",
    "block not found",
    "blockoutofrange",
    "block out of range",
    "block height is",
)
# Between attempts of one request: a transient fault (a reset, a 502) is usually gone at
# once, so the first retry comes quickly; repeated failures back off to the cap.
_RETRY_BACKOFF = BackoffPolicy(base=0.02, cap=10.0)
_HEDGE_MIN_S = 0.5  # never hedge a request younger than this
_HEDGE_FACTOR = 8.0  # ... or than this many times the usual (moving average) latency
_LATENCY_WEIGHT = 0.05
_LAGGING_BACKOFF = BackoffPolicy(base=0.05, cap=5.0)  # between asks of a lagging replica
_ENDPOINT_REST = BackoffPolicy(base=1.0, cap=15.0, jitter=False)  # a failing URL's rest
_RETRY_AFTER_CAP = 60.0
_LAGGING_TRIES = 3  # asks for a block a replica behind the URL lacked
_DOWN_AFTER = 3  # consecutive failures before a URL is reported down (one is a hiccup)
_LOG_EVERY_S = 10.0  # at most one rpc_retry line per URL this often


class EndpointBehind(RpcUnavailable):
    """This URL lacks a block another URL has: retry there at once (never reaches callers
    unless every retry lands on a lagging URL)."""


def is_retryable(error: BaseException) -> bool:
    """Transport faults and node hiccups retry here; range limits go back to the planner."""
    return isinstance(error, RpcUnavailable)


@dataclass(slots=True)
class _Endpoint:
    index: int  # position in the configuration: logged instead of the URL (it may hold a key)
    url: str
    failures: int = 0
    cooldown_until: float = 0.0
    logged_at: float = -math.inf  # when its last rpc_retry line was written
    unlogged: int = 0  # faults since that line
    head: int | None = None  # the highest block it has shown it has; None: not asked yet
    rate: AdaptiveRate = field(default_factory=AdaptiveRate)
    rate_logged_at: float = -math.inf  # when its last rpc_rate_limited line was written

    def usable(self, now: float) -> bool:
        return now >= self.cooldown_until

    def has(self, block: int | None) -> bool:
        return block is None or self.head is None or self.head >= block


class _Endpoints:
    """Health and head of each URL; picks where the next request goes."""

    def __init__(self, urls: Sequence[str], calls_per_second: float | None = None) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is needed")
        self.items = [
            _Endpoint(i, u, rate=AdaptiveRate(calls_per_second)) for i, u in enumerate(urls)
        ]

    def usable(self) -> list[_Endpoint]:
        now = time.monotonic()
        return [e for e in self.items if e.usable(now)]

    def pick(self, min_block: int | None = None) -> _Endpoint:
        """The first healthy URL that has `min_block`; else the most advanced healthy one;
        else the one whose rest ends first."""
        usable = self.usable()
        for endpoint in usable:
            if endpoint.has(min_block):
                return endpoint
        if usable:
            return max(usable, key=lambda e: -1 if e.head is None else e.head)
        return min(self.items, key=lambda e: e.cooldown_until)

    def another_has(self, endpoint: _Endpoint, block: int) -> bool:
        return any(e is not endpoint and e.has(block) for e in self.usable())

    def seconds_until_usable(self) -> float:
        return max(0.0, min(e.cooldown_until for e in self.items) - time.monotonic())

    def failed(self, endpoint: _Endpoint, retry_after: float | None, error: str = "") -> None:
        """A failing URL rests, longer each time; alone, it rests only as long as it asks.
        Its faults are logged at warning, one line per URL per _LOG_EVERY_S, counted."""
        endpoint.failures += 1
        now = time.monotonic()
        if now - endpoint.logged_at >= _LOG_EVERY_S:
            log.warning(
                "rpc_retry",
                endpoint=endpoint.index,
                error=error,
                failures_in_a_row=endpoint.failures,
                faults_not_logged=endpoint.unlogged,
            )
            endpoint.logged_at, endpoint.unlogged = now, 0
        else:
            endpoint.unlogged += 1
        rest = 0.0
        if len(self.items) > 1:
            rest = _ENDPOINT_REST.delay(endpoint.failures)
        if retry_after is not None:
            rest = max(rest, min(retry_after, _RETRY_AFTER_CAP))
        endpoint.cooldown_until = time.monotonic() + rest
        if len(self.items) > 1 and endpoint.failures == _DOWN_AFTER:
            log.warning("rpc_endpoint_down", endpoint=endpoint.index, rest_s=rest)

    def calls_per_request(self) -> int | None:
        """The most calls a request may hold at the most limited URL; None: no limit."""
        limits = [e.rate.calls_per_request for e in self.items]
        return min((n for n in limits if n is not None), default=None)

    def rate_limited(self, endpoint: _Endpoint, calls: int) -> None:
        """It said "too many requests" to `calls` calls: they are paced lower from now on."""
        rate = endpoint.rate.refused(calls)
        metrics.RPC_RATE_LIMITED.inc()
        metrics.RPC_ALLOWED_RATE.labels(str(endpoint.index)).set(rate)
        now = time.monotonic()
        if now - endpoint.rate_logged_at >= _LOG_EVERY_S:
            log.warning("rpc_rate_limited", endpoint=endpoint.index, calls_per_s=round(rate, 1))
            endpoint.rate_logged_at = now

    def succeeded(self, endpoint: _Endpoint) -> None:
        if endpoint.failures >= _DOWN_AFTER and len(self.items) > 1:
            log.info("rpc_endpoint_up", endpoint=endpoint.index, after_failures=endpoint.failures)
        elif endpoint.failures >= _DOWN_AFTER:
            log.info("rpc_recovered", endpoint=endpoint.index, after_failures=endpoint.failures)
        endpoint.failures = 0
        endpoint.cooldown_until = 0.0

    def saw_head(self, endpoint: _Endpoint, head: int) -> None:
        endpoint.head = head

    def behind(self, endpoint: _Endpoint, block: int) -> None:
        """`endpoint` lacks `block`: skip it for such requests until it reports more."""
        if endpoint.head is None or endpoint.head >= block:
            endpoint.head = block - 1
            if len(self.items) > 1:
                log.info("rpc_endpoint_behind", endpoint=endpoint.index, lacks_block=block)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RpcClient:
    """A JSON-RPC client for one logical node behind one or more URLs."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 15.0,
        max_retries: int = 8,
        calls_per_second: float | None = None,
    ) -> None:
        self._endpoints = _Endpoints(urls, calls_per_second)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        # A moving average of answered requests' latency per kind (a method, or "batch"):
        # a cheap eth_blockNumber must not make a heavy eth_getLogs batch look slow.
        self._latency: dict[str, float] = {}

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=16, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=str
            )
        return self._session

    async def call(
        self, method: str, params: Sequence[Any], *, min_block: int | None = None
    ) -> Any:
        """One call; RpcUnavailable after retries, RangeTooLarge or RpcError when refused."""
        (result,) = await self.batch([(method, params)], min_block=min_block)
        return result

    async def batch(
        self,
        calls: Sequence[Call],
        *,
        min_block: int | None = None,
        reverts_as_results: bool = False,
    ) -> list[Any]:
        """Many calls in one HTTP request; results in call order. All succeed or it raises,
        except that with `reverts_as_results` a reverted call is a `Reverted` result (an
        ownerOf of a burned token reverts, and that is an answer).

        `min_block` is the highest block the calls need: the request goes to a URL
        believed to have it, and a URL found lacking it hands over to one that has it.
        Items that still lack a block (a null header, "unknown block": a load balancer
        sent them to a lagging replica) are asked for again, alone, a few times after a
        short jittered pause; then a null header is returned and a refusal raised."""
        if not calls:
            return []
        results = await self._requested(calls, min_block, reverts_as_results)
        for attempt in range(1, _LAGGING_TRIES + 1):
            lacking = _lacking_items(calls, results)
            if not lacking or min_block is None:
                break
            metrics.RPC_RETRIES.labels("lagging_item").inc()
            await asyncio.sleep(_LAGGING_BACKOFF.delay(attempt))
            again = await self._requested(
                [calls[i] for i in lacking], min_block, reverts_as_results
            )
            for i, result in zip(lacking, again, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, _Lacking):
                raise result.error
        return results

    async def _requested(
        self, calls: Sequence[Call], min_block: int | None, reverts_as_results: bool
    ) -> list[Any]:
        """The calls in requests no larger than the providers' rate limits let one be,
        each sized when it is sent, a retry too (the limit falls while refusals teach it)."""
        results: list[Any] = []
        while len(results) < len(calls):
            results += await self._retried(calls[len(results) :], min_block, reverts_as_results)
        return results

    async def _retried(
        self, calls: Sequence[Call], min_block: int | None, reverts_as_results: bool = False
    ) -> list[Any]:
        """One request of the first calls (as many as the rate limits let one hold: the
        results of those), retried while `is_retryable` says so (across URLs)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                endpoint = self._endpoints.pick(min_block)
                size = self._endpoints.calls_per_request() or len(calls)
                return await self._send(calls[:size], endpoint, min_block, reverts_as_results)
        raise AssertionError("unreachable: tenacity reraises")

    async def head(self) -> int:
        """The highest block number any healthy URL reports (each URL's answer is kept
        for routing). With one URL, or none answering at once, a plain retried call."""
        usable = self._endpoints.usable()
        if len(self._endpoints.items) > 1 and usable:
            call: list[Call] = [("eth_blockNumber", [])]
            answers = await asyncio.gather(
                *(self._send(call, e, None) for e in usable), return_exceptions=True
            )
            heads = [int(a[0], 16) for a in answers if isinstance(a, list)]
            if heads:
                return max(heads)
        return int(await self.call("eth_blockNumber", []), 16)

    def _wait(self, state: RetryCallState) -> float:
        """Backoff, or as long as every URL still rests (a Retry-After is honoured)."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, EndpointBehind):
            return 0.0
        wait = _RETRY_BACKOFF.delay(state.attempt_number)
        return max(wait, self._endpoints.seconds_until_usable())

    async def _send(
        self,
        calls: Sequence[Call],
        endpoint: _Endpoint,
        min_block: int | None,
        reverts_as_results: bool = False,
    ) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        body = orjson.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)
            ]
        )
        method = calls[0][0] if len(calls) == 1 else "batch"
        await endpoint.rate.acquire(len(calls))
        metrics.RPC_CALLS.inc(len(calls))
        started = time.perf_counter()
        try:
            # Under a rate limit a second copy of a slow request spends the budget twice.
            hedge = not endpoint.rate.limited
            payload = await self._post(endpoint.url, body, method, hedge=hedge)
            results = _unpack(payload, ids, calls, reverts_as_results=reverts_as_results)
            self._check_reached(endpoint, calls, results, min_block)
        except EndpointBehind:
            metrics.RPC_REQUESTS.labels(method, "behind").inc()
            raise
        except RpcUnavailable as e:
            if e.rate_limited:
                self._endpoints.rate_limited(endpoint, len(calls))
            self._endpoints.failed(endpoint, e.retry_after, str(e))
            metrics.RPC_REQUESTS.labels(method, "retryable").inc()
            raise
        except (RangeTooLarge, RpcError, NotReady):
            self._endpoints.succeeded(endpoint)
            metrics.RPC_REQUESTS.labels(method, "refused").inc()
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.RPC_LATENCY.observe(elapsed)
            metrics.TIME_SPENT.labels("node").inc(elapsed)
        self._endpoints.succeeded(endpoint)
        endpoint.rate.answered(len(calls))
        metrics.RPC_REQUESTS.labels(method, "ok").inc()
        if method == "eth_blockNumber" and isinstance(results[0], str):
            self._endpoints.saw_head(endpoint, int(results[0], 16))
        return results

    def _check_reached(
        self,
        endpoint: _Endpoint,
        calls: Sequence[Call],
        results: list[Any],
        min_block: int | None,
    ) -> None:
        """Items that lack a block up to `min_block` mean this URL lags: the request moves
        to a URL that has the block, if there is one."""
        if min_block is None or not _lacking_items(calls, results):
            return
        block = min(_first_missing(calls, results) or min_block, min_block)
        self._endpoints.behind(endpoint, block)
        if self._endpoints.another_has(endpoint, block):
            raise EndpointBehind(f"node {endpoint.index} lacks block {block}")

    async def _post(self, url: str, body: bytes, kind: str, *, hedge: bool = True) -> Any:
        """POST, hedged: a request still unanswered well after the usual latency of its
        kind is sent once more, and the first answer wins (every call is a read, so
        asking twice is safe). A node that hangs one request in a hundred then costs a
        short delay, not the client timeout."""
        if not hedge:
            return await self._post_once(url, body, kind)
        first = asyncio.ensure_future(self._post_once(url, body, kind))
        second: asyncio.Future[Any] | None = None
        try:
            done, _ = await asyncio.wait({first}, timeout=self._hedge_after(kind))
            if done:
                return first.result()
            metrics.RPC_HEDGED.inc()
            second = asyncio.ensure_future(self._post_once(url, body, kind))
            return await _first_answer(first, second)
        finally:  # the loser, or both when the caller is cancelled
            first.cancel()
            if second is not None:
                second.cancel()

    def _hedge_after(self, kind: str) -> float:
        typical = max(_HEDGE_MIN_S, _HEDGE_FACTOR * self._latency.get(kind, _HEDGE_MIN_S))
        return min(typical, self._timeout.total or typical)

    async def _post_once(self, url: str, body: bytes, kind: str) -> Any:
        started = time.perf_counter()
        payload = await self._exchange(url, body)
        elapsed = time.perf_counter() - started
        average = self._latency.get(kind, elapsed)
        self._latency[kind] = average + _LATENCY_WEIGHT * (elapsed - average)
        return payload

    async def _exchange(self, url: str, body: bytes) -> Any:
        headers = {"Content-Type": "application/json"}
        try:
            async with self._http().post(url, data=body, headers=headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise RpcUnavailable(f"posting to the node at {_host(url)}: {_transport(e)}") from e
        if status == 429:
            raise RpcUnavailable(
                "node answered HTTP 429 (too many requests)",
                retry_after=retry_after,
                rate_limited=True,
            )
        if status >= 500:
            raise RpcUnavailable(f"node answered HTTP {status}", retry_after=retry_after)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise RpcUnavailable(f"node answered HTTP {status} with invalid JSON") from e
        if status != 200 and not _is_error_answer(payload):
            raise RpcUnavailable(f"node answered HTTP {status}")
        return payload


@dataclass(frozen=True, slots=True)
class _Lacking:
    """An item the serving node refused because it lacks a block (yet): asked again."""

    error: NotReady | RangeTooLarge


def _null_header(call: Call, result: Any) -> bool:
    method, params = call
    return method == "eth_getBlockByNumber" and result is None and str(params[0]).startswith("0x")


def _lacking_items(calls: Sequence[Call], results: list[Any]) -> list[int]:
    """Indexes of the items a lagging node answered: a refusal, or a header asked for by
    number that came back null."""
    return [
        i
        for i, (call, result) in enumerate(zip(calls, results, strict=True))
        if isinstance(result, _Lacking) or _null_header(call, result)
    ]


async def _first_answer(first: asyncio.Future[Any], second: asyncio.Future[Any]) -> Any:
    """The result of whichever succeeds first; the first one's error if both fail."""
    pending = {first, second}
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        failed = [f.exception() for f in done]  # every error retrieved, winner or not
        for future, error in zip(done, failed, strict=True):
            if error is None:
                return future.result()
    first.result()  # both failed: raise the first request's error
    raise AssertionError("unreachable: a failed future raises")


def _host(url: str) -> str:
    """host:port of a node URL: the rest (a path or user) may hold an API key."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _transport(error: BaseException) -> str:
    """A transport error in words, without aiohttp's repeat of the host and its ssl:default."""
    if isinstance(error, TimeoutError):
        return "no answer within the timeout (AUDIFI_RPC_TIMEOUT)"
    if isinstance(error, aiohttp.ClientSSLError):
        return f"TLS: {error.os_error}"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "no such host (DNS)"
    if isinstance(error, aiohttp.ClientConnectorError):
        code = error.os_error.errno
        return f"cannot connect: {os.strerror(code) if code else error.os_error}"
    return f"{type(error).__name__}: {error}"


def _first_missing(calls: Sequence[Call], results: list[Any]) -> int | None:
    """The lowest block asked for by number whose header came back null."""
    missing = [
        int(call[1][0], 16)
        for call, result in zip(calls, results, strict=True)
        if _null_header(call, result)
    ]
    return min(missing, default=None)


def _says_lacking(error: Exception) -> bool:
    """A refusal that means "this node does not have that block (yet)"."""
    return isinstance(error, NotReady) or (
        isinstance(error, RangeTooLarge) and "head" in str(error).lower()
    )


def _is_error_answer(payload: Any) -> bool:
    """A JSON-RPC error object, as some providers send with HTTP 4xx (e.g. 413 for a limit)."""
    return isinstance(payload, dict) and isinstance(payload.get("error"), dict)


def _unpack(
    payload: Any, ids: list[int], calls: Sequence[Call], *, reverts_as_results: bool = False
) -> list[Any]:
    """Match answers to calls by id; anything missing or foreign means the answer is bad."""
    if isinstance(payload, dict) and len(ids) == 1:
        payload = [payload]
    if not isinstance(payload, list):
        raise RpcUnavailable("node answered a batch with something other than a list")
    by_id = {item.get("id"): item for item in payload if isinstance(item, dict)}
    if set(by_id) != set(ids) or len(payload) != len(ids):
        raise RpcUnavailable(f"batch answer has {len(by_id)} usable items for {len(ids)} calls")
    results: list[Any] = []
    for i, (method, params) in zip(ids, calls, strict=True):
        item = by_id[i]
        revert = _reverted(item) if reverts_as_results else None
        try:
            results.append(revert or _result(item, method, params))
        except (NotReady, RangeTooLarge) as e:
            if not _says_lacking(e):
                raise
            results.append(_Lacking(e))
    return results


def _reverted(item: dict[str, Any]) -> Reverted | None:
    """The item's revert (code 3, or a message saying so), if it is one."""
    error = item.get("error")
    if not isinstance(error, dict):
        return None
    message = str(error.get("message", ""))
    if error.get("code") == 3 or "revert" in message.lower():
        return Reverted(message)
    return None


def _result(item: dict[str, Any], method: str, params: Sequence[Any] = ()) -> Any:
    error = item.get("error")
    if error is None:
        if "result" not in item:
            raise RpcUnavailable(f"{method}: answer has neither result nor error")
        return item["result"]
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    data = error.get("data") if isinstance(error, dict) else None
    if is_rate_limit(message):
        raise RpcUnavailable(f"{method} failed: {message} (code {code})", rate_limited=True)
    if method == "eth_getLogs":
        hint = parse_limit_error(code, message, data)
        if hint is not None and _one_block(params) and "head" not in message.lower():
            # Nothing smaller to ask for: a refusal of one block is the provider's load
            # (Infura's -32005 is also its rate limit), so it is retried, with backoff.
            raise RpcUnavailable(f"eth_getLogs refused for one block: {message} (code {code})")
        if hint is not None:
            raise RangeTooLarge(
                f"eth_getLogs refused: {message}",
                suggested_to=hint.suggested_to,
                ceiling=hint.ceiling,
            )
    if any(phrase in message.lower() for phrase in _NOT_THERE_YET):
        raise NotReady(f"{method}: {message}")
    if code in _FATAL_CODES:
        raise RpcError(f"{method} failed: {message} (code {code})", code=code)
    raise RpcUnavailable(f"{method} failed: {message} (code {code})")


def _one_block(params: Sequence[Any]) -> bool:
    """Whether an eth_getLogs filter asks for a single block (by hash, or from == to)."""
    log_filter = params[0] if params and isinstance(params[0], dict) else {}
    if "blockHash" in log_filter:
        return True
    first, last = log_filter.get("fromBlock"), log_filter.get("toBlock")
    return isinstance(first, str) and first.startswith("0x") and first == last


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    reason = type(error).__name__ if error else "unknown"
    metrics.RPC_RETRIES.labels(reason).inc()
