"""A small synchronous JSON-RPC client for the dev chain: tests, demo and benchmark.

Kept apart from the indexer's async source on purpose: the dev toolkit is the test oracle
and must not share the code it checks. Batches are one HTTP request; async callers run
these calls in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

RpcCall = tuple[str, Sequence[Any]]


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.code: int = int(error.get("code", 0))
        self.message: str = str(error.get("message", ""))
        self.data: Any = error.get("data")
        super().__init__(f"{method}: {self.code} {self.message}")

    @property
    def is_revert(self) -> bool:
        """True when an eth_call/estimate failed because the contract reverted."""
        return self.code == 3 or "revert" in self.message.lower()


class RpcClient:
    """One keep-alive HTTP connection to a node; not thread-safe."""

    def __init__(self, url: str, *, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported: {url}")
        self.url = url
        self._path = parts.path or "/"
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        self._next_id = 1

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Returns the result, or raises RpcError."""
        (result,) = self.batch([(method, params)])
        return result

    def batch(self, calls: Sequence[RpcCall]) -> list[Any]:
        """Results in call order; raises the first RpcError."""
        results = self.batch_raw(calls)
        for r in results:
            if isinstance(r, RpcError):
                raise r
        return results

    def batch_raw(self, calls: Sequence[RpcCall]) -> list[Any]:
        """Results in call order, an RpcError in place of each failed call."""
        if not calls:
            return []
        first = self._next_id
        self._next_id += len(calls)
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        payload: Any = self._post(orjson.dumps(body if len(body) > 1 else body[0]))
        answers = payload if isinstance(payload, list) else [payload]
        by_id = {a.get("id"): a for a in answers}
        out: list[Any] = []
        for i, (method, _) in enumerate(calls):
            answer = by_id.get(first + i)
            if answer is None:
                out.append(RpcError(method, {"code": -32603, "message": "no answer in batch"}))
            elif "error" in answer:
                out.append(RpcError(method, answer["error"]))
            else:
                out.append(answer.get("result"))
        return out

    def _post(self, body: bytes) -> Any:
        """One request on the kept-alive connection, reconnecting once if the node closed it."""
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):
            try:
                self._conn.request("POST", self._path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                if attempt == 2:
                    raise
        if response.status != 200:
            raise ConnectionError(f"HTTP {response.status} from {self.url}: {data[:200]!r}")
        return orjson.loads(data)
