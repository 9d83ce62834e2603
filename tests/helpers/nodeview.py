"""What a node that lags behind, or limits eth_getLogs, answers in place of the real one.

Pure rewriting of calls before they reach the real node and of its answers
after, so that a lagging node never reveals a block above its head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .faults import JsonObj
from .limits import LogLimit, limit_error

# Calls whose answers depend on the head the serving node has reached.
VIEW_METHODS: Final = frozenset(
    {
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getLogs",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getBlockReceipts",
    }
)
_NULL_ABOVE_HEAD: Final = frozenset(
    {
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
    }
)
_BEYOND_HEAD: Final = limit_error("geth-head")


@dataclass(slots=True)
class Call:
    """One JSON-RPC call on its way through the proxy."""

    request: JsonObj  # as sent to the node, params possibly rewritten
    answer: JsonObj | None = None  # set when the proxy answers in the node's place
    span: tuple[int, int] | None = None  # the eth_getLogs range, resolved to numbers
    status: int = 200  # HTTP status if this call is alone in its request


def result(value: Any) -> JsonObj:
    """A JSON-RPC success answer (the id is set by the caller)."""
    return {"jsonrpc": "2.0", "result": value}


def error(code: int, message: str) -> JsonObj:
    """A JSON-RPC error answer (the id is set by the caller)."""
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}}


def block_number(tag: Any, head: int) -> int | None:
    """A block parameter as a number; None for tags left to the node (safe, finalized)."""
    if tag in ("latest", "pending"):
        return head
    if tag == "earliest":
        return 0
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    return None


def prepare(item: JsonObj, head: int | None) -> Call:
    """The call for `item` as a node at `head` sees it (untouched when head is None).

    Block tags become numbers no higher than `head`; what lies above it is
    answered here, as null or as geth's "beyond current head" error.
    """
    call = Call(request=dict(item))
    params = item.get("params") or []
    if head is None:
        return call
    if item.get("method") == "eth_blockNumber":
        call.answer = result(hex(head))
    elif item.get("method") in ("eth_getBlockByNumber", "eth_getBlockReceipts") and params:
        by_hash = isinstance(params[0], str) and len(params[0]) == 66
        number = None if by_hash else block_number(params[0], head)
        if number is not None and number > head:
            call.answer = result(None)
        elif number is not None:
            call.request["params"] = [hex(number), *params[1:]]
    elif item.get("method") == "eth_getLogs" and params and isinstance(params[0], dict):
        _prepare_logs(call, params[0], head)
    return call


def _prepare_logs(call: Call, log_filter: JsonObj, head: int) -> None:
    if "blockHash" in log_filter:
        return
    first = block_number(log_filter.get("fromBlock", "latest"), head)
    last = block_number(log_filter.get("toBlock", "latest"), head)
    if first is None or last is None:
        return
    if last > head:
        call.answer = error(_BEYOND_HEAD.code, _BEYOND_HEAD.template)
        return
    call.request["params"] = [{**log_filter, "fromBlock": hex(first), "toBlock": hex(last)}]
    call.span = (first, last)


def conceal(call: Call, answer: JsonObj, head: int) -> JsonObj:
    """The answer without what lies above `head`: such blocks, transactions and logs vanish.

    Logs asked for by the hash of a block above the head fail as anvil fails
    for a block it does not know.
    """
    method = call.request.get("method")
    found = answer.get("result")
    if method == "eth_getLogs" and isinstance(found, list):
        below = [log for log in found if int(log["blockNumber"], 16) <= head]
        by_hash = "blockHash" in (call.request.get("params") or [{}])[0]
        if len(below) < len(found) and by_hash:
            return error(-32000, "unknown block")
        return {**answer, "result": below}
    if method in _NULL_ABOVE_HEAD and isinstance(found, dict):
        number = found.get("number") or found.get("blockNumber")
        if isinstance(number, str) and int(number, 16) > head:
            return {**answer, "result": None}
    return answer


def enforce(limit: LogLimit, call: Call, answer: JsonObj) -> JsonObj | None:
    """The provider's refusal of a call over `limit`; None when the limit lets it through."""
    found = answer.get("result")
    if call.span is None or not isinstance(found, list):
        return None
    first, last = call.span
    blocks = [int(log["blockNumber"], 16) for log in found]
    if not limit.refuses(first, last, len(blocks)):
        return None
    return {"jsonrpc": "2.0", "error": limit.refusal(first, last, blocks)}
