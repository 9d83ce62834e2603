"""Async JSON-RPC over HTTP: keep-alive, batches, per-request retries, fail-over.

This is one of the two places that retry (the other is the driver loop).
`is_retryable` alone decides; backoff is exponential with a cap and jitter,
and a server's Retry-After is honoured.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from indexer import metrics
from indexer.errors import NotReady, RangeTooLarge, RpcError, RpcUnavailable
from indexer.limits import parse_limit_error

log = structlog.get_logger("rpc")

Call = tuple[str, Sequence[Any]]

_FATAL_CODES = {-32600, -32601, -32602}
_NOT_THERE_YET = ("beyond current head", "unknown block", "header not found", "block not found")
_BACKOFF_CAP = 10.0
_ENDPOINT_COOLDOWN = (1.0, 30.0)


def is_retryable(error: BaseException) -> bool:
    """Transport faults and node hiccups retry here; range limits go back to the planner."""
    return isinstance(error, RpcUnavailable)


@dataclass(slots=True)
class _Endpoint:
    url: str
    failures: int = 0
    cooldown_until: float = 0.0

    def usable(self, now: float) -> bool:
        return now >= self.cooldown_until


@dataclass(slots=True)
class _Endpoints:
    """Prefers the first healthy endpoint; a failing one rests, then is tried again."""

    items: list[_Endpoint]
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def pick(self) -> _Endpoint:
        now = time.monotonic()
        usable = [e for e in self.items if e.usable(now)]
        if usable:
            return usable[0]
        return min(self.items, key=lambda e: e.cooldown_until)

    def failed(self, endpoint: _Endpoint) -> None:
        endpoint.failures += 1
        low, high = _ENDPOINT_COOLDOWN
        if len(self.items) > 1:
            rest = min(high, low * 2 ** (endpoint.failures - 1))
            endpoint.cooldown_until = time.monotonic() + rest

    def succeeded(self, endpoint: _Endpoint) -> None:
        endpoint.failures = 0
        endpoint.cooldown_until = 0.0


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    backoff = min(_BACKOFF_CAP, 0.1 * 2 ** (state.attempt_number - 1))
    backoff = random.uniform(backoff / 2, backoff)
    if isinstance(error, RpcUnavailable) and error.retry_after is not None:
        return max(backoff, min(error.retry_after, 60.0))
    return backoff


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RpcClient:
    """A JSON-RPC client for one logical node behind one or more URLs."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 15.0, max_retries: int = 8) -> None:
        self._endpoints = _Endpoints([_Endpoint(u) for u in urls])
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

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

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        """One call; RpcUnavailable after retries, RangeTooLarge or RpcError when refused."""
        (result,) = await self.batch([(method, params)])
        return result

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Many calls in one HTTP request; results in call order. All succeed or it raises."""
        if not calls:
            return []
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self._max_retries + 1),
            wait=_wait,
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send(calls)
        raise AssertionError("unreachable: tenacity reraises")

    async def _send(self, calls: Sequence[Call]) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        body = orjson.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)
            ]
        )
        endpoint = self._endpoints.pick()
        method = calls[0][0] if len(calls) == 1 else "batch"
        started = time.perf_counter()
        try:
            payload = await self._post(endpoint.url, body)
            results = _unpack(payload, ids, calls)
        except RpcUnavailable:
            self._endpoints.failed(endpoint)
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
        metrics.RPC_REQUESTS.labels(method, "ok").inc()
        return results

    async def _post(self, url: str, body: bytes) -> Any:
        headers = {"Content-Type": "application/json"}
        try:
            async with self._http().post(url, data=body, headers=headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise RpcUnavailable(f"posting to the node: {type(e).__name__}: {e}") from e
        if status == 429 or status >= 500:
            raise RpcUnavailable(f"node answered HTTP {status}", retry_after=retry_after)
        if status != 200:
            raise RpcUnavailable(f"node answered HTTP {status}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise RpcUnavailable(f"node answered invalid JSON ({len(raw)} bytes)") from e


def _unpack(payload: Any, ids: list[int], calls: Sequence[Call]) -> list[Any]:
    """Match answers to calls by id; anything missing or foreign means the answer is bad."""
    if isinstance(payload, dict) and len(ids) == 1:
        payload = [payload]
    if not isinstance(payload, list):
        raise RpcUnavailable("node answered a batch with something other than a list")
    by_id = {item.get("id"): item for item in payload if isinstance(item, dict)}
    if set(by_id) != set(ids):
        raise RpcUnavailable(f"batch answer has {len(by_id)} usable items for {len(ids)} calls")
    return [_result(by_id[i], method) for i, (method, _) in zip(ids, calls, strict=True)]


def _result(item: dict[str, Any], method: str) -> Any:
    error = item.get("error")
    if error is None:
        if "result" not in item:
            raise RpcUnavailable(f"{method}: answer has neither result nor error")
        return item["result"]
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    data = error.get("data") if isinstance(error, dict) else None
    if method == "eth_getLogs":
        hint = parse_limit_error(code, message, data)
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


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    reason = type(error).__name__ if error else "unknown"
    metrics.RPC_RETRIES.labels(reason).inc()
    log.debug("rpc_retry", attempt=state.attempt_number, error=str(error))
