"""The node as the pipeline sees it: headers, validated log ranges, contract code.

Everything returned here has been checked against itself: every log's block
hash matches the header fetched for that block, the node has reached the
range's last block, and no (block, logIndex) appears twice. A response that
fails a check raises a Retryable error and is never handed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.chain import BlockRef, RawLog
from indexer.errors import InconsistentResponse, NotReady
from indexer.rpc import Call, RpcClient

ADDRESSES_PER_REQUEST = 500


def _hex(value: int) -> str:
    return hex(value)


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def parse_header(raw: dict[str, Any]) -> BlockRef:
    return BlockRef(
        number=int(raw["number"], 16),
        hash=_bytes(raw["hash"]),
        parent_hash=_bytes(raw["parentHash"]),
        timestamp=int(raw["timestamp"], 16),
    )


def parse_log(raw: dict[str, Any]) -> RawLog:
    """Direct parsing of one eth_getLogs item (web3's formatters are far slower)."""
    fromhex = bytes.fromhex
    try:
        return RawLog(
            int(raw["blockNumber"], 16),
            fromhex(raw["blockHash"][2:]),
            fromhex(raw["transactionHash"][2:]),
            int(raw["logIndex"], 16),
            fromhex(raw["address"][2:]),
            tuple([fromhex(t[2:]) for t in raw["topics"]]),
            fromhex(raw["data"][2:]),
            raw.get("removed") is True,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InconsistentResponse(f"eth_getLogs returned an unparsable log: {e}") from e


@dataclass(frozen=True, slots=True)
class Fetched:
    """Validated logs of [from_block, to_block] and the headers that vouch for them."""

    from_block: int
    to_block: int
    logs: list[RawLog]
    headers: dict[int, BlockRef]


def _header_call(number: int) -> Call:
    return ("eth_getBlockByNumber", [_hex(number), False])


def _logs_calls(from_block: int, to_block: int, addresses: Sequence[bytes]) -> list[Call]:
    calls: list[Call] = []
    for start in range(0, len(addresses), ADDRESSES_PER_REQUEST):
        chunk = ["0x" + a.hex() for a in addresses[start : start + ADDRESSES_PER_REQUEST]]
        filter_ = {"fromBlock": _hex(from_block), "toBlock": _hex(to_block), "address": chunk}
        calls.append(("eth_getLogs", [filter_]))
    return calls


class ChainSource:
    """Typed, validated access to one node."""

    def __init__(self, rpc: RpcClient, *, batch_size: int = 200) -> None:
        self.rpc = rpc
        self._batch_size = batch_size

    async def chain_id(self) -> int:
        return int(await self.rpc.call("eth_chainId", []), 16)

    async def head(self) -> int:
        return int(await self.rpc.call("eth_blockNumber", []), 16)

    async def headers(self, numbers: Iterable[int]) -> dict[int, BlockRef | None]:
        """Headers by number; None where the node does not have that block (yet)."""
        wanted = sorted(set(numbers))
        found: dict[int, BlockRef | None] = {}
        for start in range(0, len(wanted), self._batch_size):
            chunk = wanted[start : start + self._batch_size]
            results = await self.rpc.batch([_header_call(n) for n in chunk])
            for number, raw in zip(chunk, results, strict=True):
                found[number] = parse_header(raw) if raw else None
        return found

    async def has_code(self, address: bytes, block: int) -> bool:
        code = await self.rpc.call("eth_getCode", ["0x" + address.hex(), _hex(block)])
        return isinstance(code, str) and len(code) > 2

    async def fetch(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[bytes],
        *,
        all_headers: bool = False,
    ) -> Fetched:
        """Logs of `addresses` in the range, with headers for every block that has logs,
        for both ends, and for every block when `all_headers` (the reorg window needs them)."""
        numbers = range(from_block, to_block + 1) if all_headers else (from_block, to_block)
        header_calls = [_header_call(n) for n in numbers]
        log_calls = _logs_calls(from_block, to_block, addresses)
        results = await self.rpc.batch([*log_calls, *header_calls])
        raw_logs = [item for chunk in results[: len(log_calls)] for item in (chunk or [])]
        headers = _require_headers(numbers, results[len(log_calls) :])
        logs = sorted((parse_log(r) for r in raw_logs), key=lambda g: (g.block_number, g.log_index))
        missing = {g.block_number for g in logs} - headers.keys()
        if missing:
            more = await self.headers(missing)
            headers.update(_require_headers(sorted(more), [more[n] for n in sorted(more)]))
        _validate(from_block, to_block, logs, headers)
        return Fetched(from_block=from_block, to_block=to_block, logs=logs, headers=headers)


def _require_headers(numbers: Iterable[int], raws: Sequence[Any]) -> dict[int, BlockRef]:
    headers: dict[int, BlockRef] = {}
    for number, raw in zip(numbers, raws, strict=True):
        if raw is None:
            raise NotReady(f"node has no block {number} yet")
        header = raw if isinstance(raw, BlockRef) else parse_header(raw)
        if header.number != number:
            raise InconsistentResponse(f"asked for block {number}, got {header.number}")
        headers[number] = header
    return headers


def _validate(
    from_block: int, to_block: int, logs: list[RawLog], headers: dict[int, BlockRef]
) -> None:
    previous: tuple[int, int] | None = None
    for item in logs:
        position = (item.block_number, item.log_index)
        if item.removed:
            raise InconsistentResponse(f"log {position} is marked removed: the chain moved")
        if not from_block <= item.block_number <= to_block:
            raise InconsistentResponse(f"log {position} is outside {from_block}..{to_block}")
        if position == previous:
            raise InconsistentResponse(f"log {position} appears twice")
        if headers[item.block_number].hash != item.block_hash:
            raise InconsistentResponse(
                f"log {position} names a block hash the header for {item.block_number} lacks"
            )
        previous = position
    for number in range(from_block + 1, to_block + 1):
        child, parent = headers.get(number), headers.get(number - 1)
        if child and parent and child.parent_hash != parent.hash:
            raise InconsistentResponse(f"block {number} does not link to block {number - 1}")
