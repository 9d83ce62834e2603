"""The node as the pipeline sees it: headers, validated log ranges, contract code.

Everything returned here has been checked against itself: every log's block
hash matches the header fetched for that block, the node has reached the
range's last block, (block, logIndex) strictly increases (so a duplicate or a
reordered log anywhere in an answer is caught, never a database error), and an eth_getLogs
call that came back empty is checked against the logsBloom of every header
fetched with it (a bloom hit is settled by the block's receipts). A response
that fails a check raises a Retryable error and is never handed on.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from indexer.chain import BlockRef, RawLog
from indexer.errors import InconsistentResponse, NotReady, RangeTooLarge, RpcError
from indexer.rpc import Call, Reverted, RpcClient

ADDRESSES_PER_REQUEST = 500
_RECEIPT_LOGS = 5_000  # logs (of any contract) one eth_getBlockReceipts batch should hold
_POSITION = operator.itemgetter(0, 3)  # RawLog (block_number, log_index)


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


def parse_logs(items: Iterable[dict[str, Any]]) -> list[RawLog]:
    """Direct parsing of eth_getLogs items (web3's formatters are far slower).

    Block and transaction hashes, addresses and topics repeat across one answer's logs:
    each distinct one is turned into bytes once and shared, which saves time and memory."""
    fromhex = bytes.fromhex
    shared: dict[str, bytes] = {}

    def hex_bytes(text: str) -> bytes:
        value = shared.get(text)
        if value is None:
            value = shared[text] = fromhex(text[2:])
        return value

    try:
        return [
            RawLog(
                int(raw["blockNumber"], 16),
                hex_bytes(raw["blockHash"]),
                hex_bytes(raw["transactionHash"]),
                int(raw["logIndex"], 16),
                hex_bytes(raw["address"]),
                tuple([hex_bytes(t) for t in raw["topics"]]),
                fromhex(raw["data"][2:]),
                raw.get("removed") is True,
            )
            for raw in items
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise InconsistentResponse(f"eth_getLogs returned an unparsable log: {e!r}") from e


@dataclass(frozen=True, slots=True)
class BlockLogs:
    """One block's header and logs as the audit read them."""

    header: BlockRef
    logs: list[RawLog]


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
        self._block_logs = 1_000  # logs per block in the receipts last read: sizes the next ask

    async def chain_id(self) -> int:
        return int(await self.rpc.call("eth_chainId", []), 16)

    async def head(self) -> int:
        """The chain's head: the highest any healthy node URL reports."""
        return await self.rpc.head()

    async def headers(self, numbers: Iterable[int]) -> dict[int, BlockRef | None]:
        """Headers by number; None where the node does not have that block (yet)."""
        wanted = sorted(set(numbers))
        found: dict[int, BlockRef | None] = {}
        for start in range(0, len(wanted), self._batch_size):
            chunk = wanted[start : start + self._batch_size]
            results = await self.rpc.batch([_header_call(n) for n in chunk], min_block=chunk[-1])
            for number, raw in zip(chunk, results, strict=True):
                found[number] = parse_header(raw) if raw else None
        return found

    async def has_code(self, address: bytes, block: int) -> bool:
        code = await self.rpc.call(
            "eth_getCode", ["0x" + address.hex(), _hex(block)], min_block=block
        )
        return isinstance(code, str) and len(code) > 2

    async def eth_calls(
        self, calls: Sequence[tuple[bytes, bytes]], block: int
    ) -> list[bytes | None]:
        """eth_call each (contract, calldata) at `block`: its return data, or None where the
        call reverted (ownerOf of a burned token does)."""
        out: list[bytes | None] = []
        for start in range(0, len(calls), self._batch_size):
            chunk = calls[start : start + self._batch_size]
            results = await self.rpc.batch(
                [
                    ("eth_call", [{"to": "0x" + to.hex(), "data": "0x" + data.hex()}, _hex(block)])
                    for to, data in chunk
                ],
                min_block=block,
                reverts_as_results=True,
            )
            out += [None if isinstance(r, Reverted) else _bytes(r) for r in results]
        return out

    async def receipts(
        self, numbers: Sequence[int], addresses: Iterable[bytes]
    ) -> dict[int, BlockLogs]:
        """Each block's header and the logs of `addresses` in its receipts, checked against
        each other: the audit's path to the chain, which does not go through eth_getLogs.
        Only those logs are parsed, and blocks are asked for a few at a time, as many as
        keep one answer near RECEIPT_LOGS_PER_REQUEST logs (receipts hold every log)."""
        wanted = {"0x" + a.hex() for a in addresses}
        found: dict[int, BlockLogs] = {}
        start = 0
        while start < len(numbers):
            per_request = max(1, min(self._batch_size // 2, _RECEIPT_LOGS // self._block_logs))
            chunk = numbers[start : start + per_request]
            calls: list[Call] = []
            for number in chunk:
                calls += [_header_call(number), ("eth_getBlockReceipts", [_hex(number)])]
            results = await self.rpc.batch(calls, min_block=chunk[-1])
            seen = 0
            for i, number in enumerate(chunk):
                header = _require_headers([number], [results[2 * i]])[number]
                receipts = results[2 * i + 1]
                if not isinstance(receipts, list):
                    raise NotReady(f"node has no receipts for block {number} yet")
                every = [g for receipt in receipts for g in receipt.get("logs") or []]
                seen += len(every)
                logs = parse_logs(g for g in every if str(g.get("address")).lower() in wanted)
                if any(g.block_hash != header.hash or g.block_number != number for g in logs):
                    raise InconsistentResponse(f"block {number}'s receipts name another block")
                _check_order(logs)
                found[number] = BlockLogs(header, logs)
            self._block_logs = max(1, seen // len(chunk))
            start += len(chunk)
        return found

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
        # Both ends first: they go with the logs, in one request to one node.
        numbers = [from_block, *([to_block] if to_block != from_block else [])]
        if all_headers:
            numbers += range(from_block + 1, to_block)
        header_calls = [_header_call(n) for n in numbers]
        log_calls = _logs_calls(from_block, to_block, addresses)
        # No request larger than the batch size: a provider's per-second budget refuses a
        # batch over it however slowly it is sent.
        room = max(len(numbers[:2]), self._batch_size - len(log_calls))
        try:
            results = await self.rpc.batch([*log_calls, *header_calls[:room]], min_block=to_block)
        except RangeTooLarge as e:
            if from_block == to_block:  # nothing smaller to ask for: wait, do not spin
                raise NotReady(f"node refused eth_getLogs for block {to_block} alone: {e}") from e
            raise
        chunks = [chunk or [] for chunk in results[: len(log_calls)]]
        raws = results[len(log_calls) :]
        for start in range(room, len(header_calls), self._batch_size):
            chunk = header_calls[start : start + self._batch_size]
            raws += await self.rpc.batch(chunk, min_block=to_block)
        headers = _require_headers(numbers, raws)
        logs = parse_logs(r for chunk in chunks for r in chunk)
        if len(chunks) > 1:  # each answer must be in chain order; several are merged
            at = 0
            for chunk in chunks:
                _check_order(logs[at : at + len(chunk)])
                at += len(chunk)
            logs.sort(key=_POSITION)
        missing = {g.block_number for g in logs} - headers.keys()
        if missing:
            more = await self.headers(missing)
            headers.update(_require_headers(sorted(more), [more[n] for n in sorted(more)]))
        _validate(from_block, to_block, logs, headers)
        await self._check_empty_calls(log_calls, chunks, headers, _blooms(raws))
        return Fetched(from_block=from_block, to_block=to_block, logs=logs, headers=headers)

    async def _check_empty_calls(
        self,
        log_calls: list[Call],
        chunks: list[list[Any]],
        headers: dict[int, BlockRef],
        blooms: dict[int, bytes],
    ) -> None:
        """An empty eth_getLogs answer must agree with the blooms of the headers we hold."""
        suspects: dict[int, list[bytes]] = {}
        for call, chunk in zip(log_calls, chunks, strict=True):
            if chunk:
                continue
            addresses = [_bytes(a) for a in call[1][0]["address"]]
            for number, bloom in blooms.items():
                hits = [a for a in addresses if _in_bloom(bloom, a)]
                if hits:
                    suspects.setdefault(number, []).extend(hits)
        for number in sorted(suspects):
            await self._confirm_no_logs(headers[number], set(suspects[number]))

    async def _confirm_no_logs(self, header: BlockRef, addresses: set[bytes]) -> None:
        """Raise if the block's receipts hold logs of `addresses` (a bloom can only say maybe)."""
        try:
            receipts = await self.rpc.call(
                "eth_getBlockReceipts", ["0x" + header.hash.hex()], min_block=header.number
            )
        except RpcError:  # a node without eth_getBlockReceipts: ask by block hash instead
            found = await self.rpc.call(
                "eth_getLogs",
                [{"blockHash": "0x" + header.hash.hex(), "address": _hexes(addresses)}],
                min_block=header.number,
            )
        else:
            if receipts is None:
                raise NotReady(f"node has no block {header.number} by its hash (any more)")
            found = [g for receipt in receipts for g in receipt.get("logs") or []]
        for raw in found:
            if _bytes(raw["blockHash"]) != header.hash:
                raise InconsistentResponse(f"block {header.number} changed while being checked")
            if _bytes(raw["address"]) in addresses:
                raise InconsistentResponse(
                    f"eth_getLogs returned nothing for block {header.number}, "
                    "whose receipts hold logs of tracked contracts"
                )


def _hexes(addresses: Iterable[bytes]) -> list[str]:
    return ["0x" + a.hex() for a in sorted(addresses)]


def _blooms(raws: Sequence[Any]) -> dict[int, bytes]:
    """logsBloom by block number, of the headers that carry one."""
    found: dict[int, bytes] = {}
    for raw in raws:
        if isinstance(raw, dict) and isinstance(raw.get("logsBloom"), str):
            found[int(raw["number"], 16)] = _bytes(raw["logsBloom"])
    return found


def _in_bloom(bloom: bytes, item: bytes) -> bool:
    """Whether `item` may be in the 2048-bit bloom (never False when it is: no false negatives)."""
    if len(bloom) != 256:
        return True
    return all(bloom[byte] & mask for byte, mask in _bloom_bits(item))


@functools.lru_cache(maxsize=65_536)
def _bloom_bits(item: bytes) -> tuple[tuple[int, int], ...]:
    """The three (byte, mask) positions `item` sets in a logsBloom (yellow paper, 4.3.1)."""
    digest = keccak(item)
    bits = (int.from_bytes(digest[i : i + 2], "big") & 2047 for i in (0, 2, 4))
    return tuple((255 - bit // 8, 1 << (bit % 8)) for bit in bits)


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


def _check_order(logs: Sequence[RawLog]) -> None:
    previous: tuple[int, int] | None = None
    for item in logs:
        previous = _after(previous, (item.block_number, item.log_index))


def _after(previous: tuple[int, int] | None, position: tuple[int, int]) -> tuple[int, int]:
    """(block, logIndex) must strictly increase: anything else is a duplicate or a
    reordered answer, and such an answer is not trusted for the rest either."""
    if previous is not None and position <= previous:
        what = "appears twice" if position == previous else f"comes after {previous}"
        raise InconsistentResponse(f"log {position} {what}: the answer is out of order")
    return position


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
        previous = _after(previous, position)
        if headers[item.block_number].hash != item.block_hash:
            raise InconsistentResponse(
                f"log {position} names a block hash the header for {item.block_number} lacks"
            )
    for number in range(from_block + 1, to_block + 1):
        child, parent = headers.get(number), headers.get(number - 1)
        if child and parent and child.parent_hash != parent.hash:
            raise InconsistentResponse(f"block {number} does not link to block {number - 1}")
