"""The chain as the test oracle: what the indexer's tables must say, read from the node.

Deliberately independent of the indexer: its own event signatures and log parsing, state
read through the contracts' view functions (ownerOf, balanceOf, totalSupply) in batched
eth_calls, never through `indexer.decode`. Everything is read at one block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from indexer.devchain.contracts import encode_call, hex_address
from indexer.devchain.rpc import RpcClient, RpcError

CALLS_PER_REQUEST = 2000
BLOCKS_PER_GET_LOGS = 5000
_ZERO = bytes(20)


def _topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRANSFER = _topic("Transfer(address,address,uint256)")
DIVIDEND_DEPOSITED = _topic("DividendDeposited(uint256,address,address,uint256,uint256)")
DIVIDEND_CLAIMED = _topic("DividendClaimed(uint256,address,uint256,uint256)")


@dataclass(frozen=True, slots=True)
class MasterInfo:
    master_id: bytes
    nft: bytes
    distributor: bytes
    total_supply: int


@dataclass(frozen=True, slots=True)
class Deposit:
    payer: bytes
    token: bytes  # bytes(20) = native coin
    amount: int
    amount_per_share: int


@dataclass(frozen=True, slots=True)
class ChainState:
    """Everything the factory deployed, as of `block`. Addresses are 20-byte `bytes`."""

    block: int
    masters: dict[bytes, MasterInfo]  # by nft address
    artist_coins: dict[bytes, bytes]  # token address -> artist id (16 bytes)
    nft_minted: dict[bytes, int]  # nft -> ids 1..minted were minted (some maybe burned)
    nft_owners: dict[bytes, dict[int, bytes]]  # nft -> token id -> owner, live tokens only
    nft_burned: dict[bytes, set[int]]  # nft -> minted ids that no longer exist
    coin_total_supply: dict[bytes, int]
    # token -> holder -> balance, for every address in the token's Transfer logs (zeros kept)
    coin_balances: dict[bytes, dict[bytes, int]]
    deposits: dict[tuple[bytes, int], Deposit]  # (distributor, dividend id)
    claims_by_dividend: dict[tuple[bytes, int], int]  # (distributor, dividend id) -> sum
    claims_by_holder: dict[tuple[bytes, bytes], int]  # (distributor, holder) -> sum


def read_state(
    rpc: RpcClient, factory: bytes, *, block: int | None = None, from_block: int = 0
) -> ChainState:
    """Reads the whole AudiFi state at `block` (default: latest) from the node.

    `from_block` bounds the log scans (the factory's deployment block is a safe start).
    """
    at = int(rpc.call("eth_blockNumber"), 16) if block is None else block
    masters, coins = _children(rpc, factory, at)
    minted = _read_uint(rpc, list(masters), "minted()", at)
    owners, burned = _nft_owners(rpc, masters, minted, at)
    transfers = _logs(rpc, list(coins), [TRANSFER], from_block, at)
    dividend_logs = _logs(
        rpc,
        [m.distributor for m in masters.values()],
        [DIVIDEND_DEPOSITED, DIVIDEND_CLAIMED],
        from_block,
        at,
    )
    deposits, by_dividend, by_holder = _dividends(dividend_logs)
    return ChainState(
        block=at,
        masters=masters,
        artist_coins=coins,
        nft_minted=minted,
        nft_owners=owners,
        nft_burned=burned,
        coin_total_supply=_read_uint(rpc, list(coins), "totalSupply()", at),
        coin_balances=_coin_balances(rpc, list(coins), transfers, at),
        deposits=deposits,
        claims_by_dividend=by_dividend,
        claims_by_holder=by_holder,
    )


def eth_calls(
    rpc: RpcClient, calls: Sequence[tuple[bytes, bytes]], block: int
) -> list[bytes | RpcError]:
    """(to, calldata) pairs as batched eth_calls at `block`; a revert comes back as RpcError."""
    out: list[bytes | RpcError] = []
    tag = hex(block)
    for start in range(0, len(calls), CALLS_PER_REQUEST):
        chunk = calls[start : start + CALLS_PER_REQUEST]
        requests = [
            ("eth_call", [{"to": hex_address(to), "data": "0x" + data.hex()}, tag])
            for to, data in chunk
        ]
        for result in rpc.batch_raw(requests):
            if isinstance(result, RpcError) and not result.is_revert:
                raise result
            out.append(result if isinstance(result, RpcError) else bytes.fromhex(result[2:]))
    return out


def _ok(result: bytes | RpcError) -> bytes:
    if isinstance(result, RpcError):
        raise result
    return result


def _read_uint(
    rpc: RpcClient, contracts: list[bytes], signature: str, block: int
) -> dict[bytes, int]:
    data = encode_call(signature)
    results = eth_calls(rpc, [(a, data) for a in contracts], block)
    return {a: int.from_bytes(_ok(r), "big") for a, r in zip(contracts, results, strict=True)}


def _children(
    rpc: RpcClient, factory: bytes, block: int
) -> tuple[dict[bytes, MasterInfo], dict[bytes, bytes]]:
    """Every master and artist coin, from the factory's enumeration getters."""
    n_masters, n_coins = (
        int.from_bytes(_ok(r), "big")
        for r in eth_calls(
            rpc,
            [
                (factory, encode_call("mastersCount()")),
                (factory, encode_call("artistCoinsCount()")),
            ],
            block,
        )
    )
    calls = [(factory, encode_call("masterAt(uint256)", i)) for i in range(n_masters)]
    calls += [(factory, encode_call("artistCoinAt(uint256)", i)) for i in range(n_coins)]
    results = [_ok(r) for r in eth_calls(rpc, calls, block)]
    masters = {}
    for raw in results[:n_masters]:
        master_id, nft, distributor, supply = decode(
            ["bytes16", "address", "address", "uint256"], raw
        )
        info = MasterInfo(master_id, _addr(nft), _addr(distributor), supply)
        masters[info.nft] = info
    coins = {}
    for raw in results[n_masters:]:
        artist_id, token = decode(["bytes16", "address"], raw)
        coins[_addr(token)] = artist_id
    return masters, coins


def _nft_owners(
    rpc: RpcClient, masters: dict[bytes, MasterInfo], minted: dict[bytes, int], block: int
) -> tuple[dict[bytes, dict[int, bytes]], dict[bytes, set[int]]]:
    """ownerOf for every id 1..totalSupply; a reverting id <= minted was burned."""
    calls = [
        (nft, encode_call("ownerOf(uint256)", token_id))
        for nft, m in masters.items()
        for token_id in range(1, m.total_supply + 1)
    ]
    results = iter(eth_calls(rpc, calls, block))
    owners: dict[bytes, dict[int, bytes]] = {}
    burned: dict[bytes, set[int]] = {}
    for nft, m in masters.items():
        owners[nft], burned[nft] = {}, set()
        for token_id in range(1, m.total_supply + 1):
            result = next(results)
            if isinstance(result, bytes):
                owners[nft][token_id] = result[-20:]
            elif token_id <= minted[nft]:
                burned[nft].add(token_id)
    return owners, burned


def _coin_balances(
    rpc: RpcClient, coins: list[bytes], transfers: list[dict[str, Any]], block: int
) -> dict[bytes, dict[bytes, int]]:
    """balanceOf for every (token, address) seen in ERC-20 Transfer logs (3 topics)."""
    seen: dict[tuple[bytes, bytes], None] = {}
    for log in transfers:
        if len(log["topics"]) != 3:
            continue
        token = _addr(log["address"])
        for topic in log["topics"][1:]:
            holder = _addr_topic(topic)
            if holder != _ZERO:
                seen[(token, holder)] = None
    pairs = list(seen)
    results = eth_calls(
        rpc, [(token, encode_call("balanceOf(address)", holder)) for token, holder in pairs], block
    )
    balances: dict[bytes, dict[bytes, int]] = {token: {} for token in coins}
    for (token, holder), result in zip(pairs, results, strict=True):
        balances[token][holder] = int.from_bytes(_ok(result), "big")
    return balances


def _dividends(
    logs: list[dict[str, Any]],
) -> tuple[
    dict[tuple[bytes, int], Deposit], dict[tuple[bytes, int], int], dict[tuple[bytes, bytes], int]
]:
    """Deposits, and claim sums per (distributor, dividend) and per (distributor, holder)."""
    deposits: dict[tuple[bytes, int], Deposit] = {}
    by_dividend: dict[tuple[bytes, int], int] = {}
    by_holder: dict[tuple[bytes, bytes], int] = {}
    for log in logs:
        distributor = _addr(log["address"])
        topics = log["topics"]
        dividend_id = int(topics[1], 16)
        data = bytes.fromhex(log["data"][2:])
        if topics[0] == DIVIDEND_DEPOSITED:
            token, amount, per_share = decode(["address", "uint256", "uint256"], data)
            deposits[(distributor, dividend_id)] = Deposit(
                _addr_topic(topics[2]), _addr(token), amount, per_share
            )
        else:
            (amount,) = decode(["uint256"], data)
            holder = _addr_topic(topics[2])
            key = (distributor, dividend_id)
            by_dividend[key] = by_dividend.get(key, 0) + amount
            by_holder[(distributor, holder)] = by_holder.get((distributor, holder), 0) + amount
    return deposits, by_dividend, by_holder


def _logs(
    rpc: RpcClient, addresses: list[bytes], topic0s: list[str], from_block: int, to_block: int
) -> list[dict[str, Any]]:
    """eth_getLogs over [from_block, to_block] in windows, all windows in one batch request."""
    if not addresses:
        return []
    requests = [
        (
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(lo),
                    "toBlock": hex(hi),
                    "address": [hex_address(a) for a in addresses],
                    "topics": [topic0s],
                }
            ],
        )
        for lo, hi in _windows(from_block, to_block, BLOCKS_PER_GET_LOGS)
    ]
    return [log for window in rpc.batch(requests) for log in window]


def _windows(lo: int, hi: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(lo, hi + 1, size):
        yield start, min(start + size - 1, hi)


def _addr(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _addr_topic(topic: str) -> bytes:
    return bytes.fromhex(topic[-40:])
