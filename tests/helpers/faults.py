"""The faults the RPC proxy can inject, and what each one does to a JSON-RPC exchange.

Pure functions over decoded JSON so that a fault's effect is exactly what a
test sees; the proxy decides when a fault fires, this module only how.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

JsonObj = dict[str, Any]


class Scope(enum.Enum):
    """Where a fault acts: on the HTTP exchange, on a batch, or on one request in it."""

    HTTP = "http"
    BATCH = "batch"
    ITEM = "item"


class Fault(enum.Enum):
    """One kind of misbehaviour seen from real providers and load balancers."""

    HTTP_429 = "http_429"  # rate limited, with Retry-After (seconds)
    HTTP_429_NO_RETRY_AFTER = "http_429_no_retry_after"
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    RESET = "reset"  # connection reset (RST) instead of a response
    READ_TIMEOUT = "read_timeout"  # hold the request for `hold_s`, then reset
    SLOW = "slow"  # wait `slow_s`, then answer normally
    TRUNCATED = "truncated"  # complete HTTP response whose JSON body is cut short
    INVALID_JSON = "invalid_json"  # HTTP 200 with a body that is not JSON
    BATCH_MISSING = "batch_missing"  # the last response of a batch is left out
    BATCH_REORDERED = "batch_reordered"  # batch responses in reverse order
    RPC_ERROR = "rpc_error"  # a JSON-RPC error object instead of the result
    WRONG_ID = "wrong_id"  # the response carries another request's id
    EMPTY_LOGS = "empty_logs"  # eth_getLogs answers [] whatever the range holds
    HEAD_JUMP = "head_jump"  # eth_blockNumber once answers `head_jump` blocks lower

    @property
    def scope(self) -> Scope:
        """Where this fault acts."""
        if self in _BATCH_FAULTS:
            return Scope.BATCH
        if self in _ITEM_FAULTS:
            return Scope.ITEM
        return Scope.HTTP

    def fits(self, method: str) -> bool:
        """Whether this item fault can hit a request for `method`."""
        only = _ONLY_FOR.get(self)
        return only is None or only == method


_BATCH_FAULTS = frozenset({Fault.BATCH_MISSING, Fault.BATCH_REORDERED})
_ITEM_FAULTS = frozenset({Fault.RPC_ERROR, Fault.WRONG_ID, Fault.EMPTY_LOGS, Fault.HEAD_JUMP})
_ONLY_FOR = {Fault.EMPTY_LOGS: "eth_getLogs", Fault.HEAD_JUMP: "eth_blockNumber"}

_STATUS = {
    Fault.HTTP_429: (429, "Too Many Requests"),
    Fault.HTTP_429_NO_RETRY_AFTER: (429, "Too Many Requests"),
    Fault.HTTP_500: (500, "Internal Server Error"),
    Fault.HTTP_502: (502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    Fault.HTTP_503: (503, "upstream connect error or disconnect/reset before headers"),
}

# What some gateways send with status 200: an HTML page where JSON was expected.
INVALID_BODY = b"<html><head><title>Just a moment...</title></head><body></body></html>"


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The knobs of the faults that need one; defaults keep tests fast."""

    retry_after_s: int = 1
    slow_s: float = 0.3
    hold_s: float = 30.0  # longer than any client timeout used against the proxy
    rpc_error_code: int = -32000
    rpc_error_message: str = "internal error"
    head_jump: int = 3


def status_reply(fault: Fault, settings: FaultSettings) -> tuple[int, dict[str, str], str] | None:
    """Status, headers and text of an HTTP error fault; None for the other faults."""
    if fault not in _STATUS:
        return None
    status, text = _STATUS[fault]
    headers = {"Retry-After": str(settings.retry_after_s)} if fault is Fault.HTTP_429 else {}
    return status, headers, text


def corrupt_body(fault: Fault, body: bytes) -> bytes:
    """The body the client receives under a body fault (unchanged for other faults)."""
    if fault is Fault.TRUNCATED:
        return body[: max(1, len(body) // 2)]
    if fault is Fault.INVALID_JSON:
        return INVALID_BODY
    return body


def apply_item_fault(fault: Fault, response: JsonObj, settings: FaultSettings) -> JsonObj:
    """The response to one request as damaged by an item fault."""
    base = {"jsonrpc": "2.0", "id": response.get("id")}
    if fault is Fault.RPC_ERROR:
        error = {"code": settings.rpc_error_code, "message": settings.rpc_error_message}
        return {**base, "error": error}
    if fault is Fault.WRONG_ID:
        wrong = response["id"] + 1000 if isinstance(response.get("id"), int) else "wrong-id"
        return {**response, "id": wrong}
    if fault is Fault.EMPTY_LOGS:
        return {**base, "result": []}
    if fault is Fault.HEAD_JUMP and isinstance(response.get("result"), str):
        lowered = max(0, int(response["result"], 16) - settings.head_jump)
        return {**response, "result": hex(lowered)}
    return response


def apply_batch_fault(fault: Fault, responses: Sequence[JsonObj]) -> list[JsonObj]:
    """A batch's responses as damaged by a batch fault."""
    if fault is Fault.BATCH_MISSING:
        return list(responses[:-1])
    if fault is Fault.BATCH_REORDERED:
        return list(reversed(responses))
    return list(responses)
