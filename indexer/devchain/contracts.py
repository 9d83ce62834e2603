"""The AudiFi contracts on a dev chain: artifacts, calldata, sending and deploying.

Transactions go out as `eth_sendTransaction` from anvil's unlocked accounts (no local
signing) with an explicit gas limit, because under manual mining a transaction may depend
on one still pending, which `eth_estimateGas` cannot see. The sender's account is assumed
to be used by nobody else while `send` runs. Addresses are 20-byte `bytes`.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from indexer.devchain.anvil import mine
from indexer.devchain.rpc import RpcClient

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
Receipt = dict[str, Any]

# (base, per item) gas limits: about 1.5x the measured use (more where refunds hide the
# real need), so a batch never runs out and 300 items stay under EIP-7825's 2**24 cap.
_GAS: dict[str, tuple[int, int]] = {
    "deployMaster(bytes16,uint256)": (3_000_000, 0),
    "deployArtistCoin(bytes16,string,uint8)": (2_000_000, 0),
    "mintBatch(address,uint256)": (80_000, 37_000),
    "transferFrom(address,address,uint256)": (100_000, 0),
    "adminTransferBatch(uint256[],address[])": (80_000, 47_000),
    "burn(uint256)": (80_000, 0),
    "adminBurnBatch(uint256[])": (80_000, 25_000),
    "mintBatch(address[],uint256[])": (80_000, 39_000),
    "transfer(address,uint256)": (100_000, 0),
    "adminTransferBatch(address[],address[],uint256[])": (80_000, 47_000),
    "adminBurnBatch(address[],uint256[])": (80_000, 25_000),
    "depositNative()": (200_000, 0),
    "depositToken(address,uint256)": (200_000, 0),
    "claimBatch(uint256,uint256[])": (80_000, 45_000),
    "withdrawNative()": (100_000, 0),
}
DEPLOY_FACTORY_GAS = 8_000_000


class TxFailed(RuntimeError):
    """A transaction reverted or was not mined in time."""


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


@dataclass(frozen=True, slots=True)
class Tx:
    """One transaction from an unlocked account; `to=None` deploys `data`."""

    sender: bytes
    to: bytes | None
    data: bytes
    gas: int
    value: int = 0


@dataclass(frozen=True, slots=True)
class Master:
    """One MasterDeployed: the NFT and its distributor."""

    master_id: bytes
    nft: bytes
    distributor: bytes
    total_supply: int
    block: int


@dataclass(frozen=True, slots=True)
class ArtistCoinRef:
    artist_id: bytes
    token: bytes
    symbol: str
    decimals: int
    block: int


@dataclass(frozen=True, slots=True)
class Deployment:
    address: bytes
    block: int


def hex_address(address: bytes) -> str:
    return "0x" + address.hex()


def address_from_hex(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {value}")
    return raw


@functools.cache
def load_artifact(name: str) -> Artifact:
    """The committed compiler output for one contract (see compile.mjs)."""
    raw = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    return Artifact(name=name, abi=raw["abi"], bytecode=bytes.fromhex(raw["bytecode"][2:]))


@functools.cache
def _parse_signature(signature: str) -> tuple[bytes, list[str]]:
    inner = signature[signature.index("(") + 1 : -1]
    return keccak(text=signature)[:4], inner.split(",") if inner else []


def encode_call(signature: str, *args: Any) -> bytes:
    """Calldata for `signature` (e.g. "mintBatch(address,uint256)").

    A direct ABI encoder for the only types the AudiFi calls take (uintN, address, bytesN,
    string, and arrays of the static ones): eth_abi spent more time encoding 250-item
    batches than anvil spent running them.
    """
    selector, types = _parse_signature(signature)
    if len(types) != len(args):
        raise ValueError(f"{signature} takes {len(types)} arguments, got {len(args)}")
    heads: list[bytes] = []
    tails: list[bytes] = []
    offset = 32 * len(types)
    for abi_type, value in zip(types, args, strict=True):
        if abi_type.endswith("[]"):
            tail = _uint(len(value)) + b"".join(_word(abi_type[:-2], v) for v in value)
        elif abi_type == "string":
            data = value.encode()
            tail = _uint(len(data)) + data + bytes(-len(data) % 32)
        else:
            heads.append(_word(abi_type, value))
            continue
        heads.append(_uint(offset))
        tails.append(tail)
        offset += len(tail)
    return selector + b"".join(heads) + b"".join(tails)


def _uint(value: int, bits: int = 256) -> bytes:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{value} is not a uint{bits}")
    return value.to_bytes(32, "big")


def _word(abi_type: str, value: Any) -> bytes:
    """One static ABI word."""
    if abi_type == "address":
        if not isinstance(value, bytes) or len(value) != 20:
            raise ValueError(f"address must be 20 bytes: {value!r}")
        return bytes(12) + value
    if abi_type.startswith("uint"):
        return _uint(value, int(abi_type[4:]))
    if abi_type.startswith("bytes") and isinstance(value, bytes):
        size = int(abi_type[5:])
        if len(value) != size:
            raise ValueError(f"{abi_type} must be {size} bytes: {value!r}")
        return value + bytes(32 - size)
    raise ValueError(f"unsupported ABI type {abi_type} for {value!r}")


def call_tx(
    sender: bytes, to: bytes, signature: str, *args: Any, items: int = 1, value: int = 0
) -> Tx:
    """A Tx for a known AudiFi function, its gas sized for `items` batch entries."""
    base, per_item = _GAS[signature]
    return Tx(sender, to, encode_call(signature, *args), base + per_item * items, value)


def view(
    rpc: RpcClient, to: bytes, signature: str, out_types: Sequence[str], *args: Any
) -> tuple[Any, ...]:
    """eth_call at latest, outputs decoded with eth_abi."""
    data = rpc.call(
        "eth_call", [{"to": hex_address(to), "data": "0x" + encode_call(signature, *args).hex()}]
    )
    return tuple(decode(list(out_types), bytes.fromhex(data[2:])))


def _tx_json(tx: Tx, nonce: int) -> dict[str, str]:
    out = {
        "from": hex_address(tx.sender),
        "data": "0x" + tx.data.hex(),
        "gas": hex(tx.gas),
        "nonce": hex(nonce),
    }
    if tx.to is not None:
        out["to"] = hex_address(tx.to)
    if tx.value:
        out["value"] = hex(tx.value)
    return out


def send(rpc: RpcClient, txs: Sequence[Tx]) -> list[str]:
    """Submits txs in order; their hashes.

    Nonces are explicit (from the pending count): anvil works on a batch's requests
    concurrently, and under automine it would otherwise give two of them the same nonce.
    Each run of txs from one sender is one batch request and the next run waits for it, so
    the pool (ordered first-in first-out) keeps exactly this order across senders.
    """
    senders = list(dict.fromkeys(tx.sender for tx in txs))
    counts = rpc.batch([("eth_getTransactionCount", [hex_address(s), "pending"]) for s in senders])
    nonces = {s: int(n, 16) for s, n in zip(senders, counts, strict=True)}
    hashes: list[str] = []
    start = 0
    while start < len(txs):
        end = start
        while end < len(txs) and txs[end].sender == txs[start].sender:
            end += 1
        calls = []
        for tx in txs[start:end]:
            calls.append(("eth_sendTransaction", [_tx_json(tx, nonces[tx.sender])]))
            nonces[tx.sender] += 1
        hashes.extend(rpc.batch(calls))
        start = end
    return hashes


def wait_receipts(
    rpc: RpcClient, hashes: Sequence[str], *, mine_blocks: bool, timeout: float = 120.0
) -> list[Receipt]:
    """Receipts in order, mining (if asked) until all are in; raises TxFailed on a revert.

    Gives up (TxFailed) after `timeout`, or once more blocks were mined than there are
    txs: every tx fits in a block, so one still missing then was dropped by the node.
    """
    deadline = time.monotonic() + timeout
    receipts: list[Receipt | None] = [None] * len(hashes)
    for mined in itertools.count():
        missing = [i for i, r in enumerate(receipts) if r is None]
        if not missing:
            break
        if time.monotonic() > deadline or (mine_blocks and mined > len(hashes)):
            raise TxFailed(f"{len(missing)} of {len(hashes)} txs not mined")
        if mine_blocks:
            mine(rpc)
        found = rpc.batch([("eth_getTransactionReceipt", [hashes[i]]) for i in missing])
        for i, receipt in zip(missing, found, strict=True):
            receipts[i] = receipt
        if not mine_blocks and None in receipts:
            time.sleep(0.05)
    done = [r for r in receipts if r is not None]
    for r in done:
        if r["status"] != "0x1":
            raise TxFailed(f"tx {r['transactionHash']} reverted in block {r['blockNumber']}")
    return done


def transact(rpc: RpcClient, txs: Sequence[Tx], *, mine_blocks: bool = True) -> list[Receipt]:
    """Sends txs, mines them (unless the node mines by itself) and returns their receipts."""
    return wait_receipts(rpc, send(rpc, txs), mine_blocks=mine_blocks)


def deploy_factory(rpc: RpcClient, sender: bytes, *, mine_blocks: bool = True) -> Deployment:
    """Deploys AudiFiFactory; `sender` becomes the admin of everything it deploys."""
    tx = Tx(sender, None, load_artifact("AudiFiFactory").bytecode, DEPLOY_FACTORY_GAS)
    (receipt,) = transact(rpc, [tx], mine_blocks=mine_blocks)
    return Deployment(address_from_hex(receipt["contractAddress"]), int(receipt["blockNumber"], 16))


def deploy_master_tx(sender: bytes, factory: bytes, master_id: bytes, total_supply: int) -> Tx:
    return call_tx(sender, factory, "deployMaster(bytes16,uint256)", master_id, total_supply)


def deploy_artist_coin_tx(
    sender: bytes, factory: bytes, artist_id: bytes, symbol: str, decimals: int
) -> Tx:
    signature = "deployArtistCoin(bytes16,string,uint8)"
    return call_tx(sender, factory, signature, artist_id, symbol, decimals)


def masters_deployed(receipts: Sequence[Receipt]) -> list[Master]:
    """The MasterDeployed events in these receipts (topics hold id, nft, distributor)."""
    topic0 = "0x" + keccak(text="MasterDeployed(bytes16,address,address,uint256)").hex()
    return [
        Master(
            master_id=bytes.fromhex(log["topics"][1][2:34]),
            nft=bytes.fromhex(log["topics"][2][-40:]),
            distributor=bytes.fromhex(log["topics"][3][-40:]),
            total_supply=int(log["data"], 16),
            block=int(log["blockNumber"], 16),
        )
        for r in receipts
        for log in r["logs"]
        if log["topics"][0] == topic0
    ]


def artist_coins_deployed(receipts: Sequence[Receipt]) -> list[ArtistCoinRef]:
    """The ArtistCoinDeployed events in these receipts."""
    topic0 = "0x" + keccak(text="ArtistCoinDeployed(bytes16,address,string,uint8)").hex()
    out = []
    for r in receipts:
        for log in r["logs"]:
            if log["topics"][0] != topic0:
                continue
            symbol, decimals = decode(["string", "uint8"], bytes.fromhex(log["data"][2:]))
            token = bytes.fromhex(log["topics"][2][-40:])
            block = int(log["blockNumber"], 16)
            out.append(
                ArtistCoinRef(bytes.fromhex(log["topics"][1][2:34]), token, symbol, decimals, block)
            )
    return out


# Typed builders for the calls the workload and tests make. `sender` must be the contract's
# admin for the admin* and mint functions.


def nft_mint_batch_tx(sender: bytes, nft: bytes, to: bytes, count: int) -> Tx:
    return call_tx(sender, nft, "mintBatch(address,uint256)", to, count, items=count)


def nft_transfer_tx(sender: bytes, nft: bytes, from_: bytes, to: bytes, token_id: int) -> Tx:
    return call_tx(sender, nft, "transferFrom(address,address,uint256)", from_, to, token_id)


def nft_admin_transfer_batch_tx(
    sender: bytes, nft: bytes, token_ids: Sequence[int], to: Sequence[bytes]
) -> Tx:
    signature = "adminTransferBatch(uint256[],address[])"
    return call_tx(sender, nft, signature, list(token_ids), list(to), items=len(token_ids))


def nft_burn_tx(sender: bytes, nft: bytes, token_id: int) -> Tx:
    return call_tx(sender, nft, "burn(uint256)", token_id)


def nft_admin_burn_batch_tx(sender: bytes, nft: bytes, token_ids: Sequence[int]) -> Tx:
    signature = "adminBurnBatch(uint256[])"
    return call_tx(sender, nft, signature, list(token_ids), items=len(token_ids))


def coin_mint_batch_tx(
    sender: bytes, coin: bytes, to: Sequence[bytes], amounts: Sequence[int]
) -> Tx:
    signature = "mintBatch(address[],uint256[])"
    return call_tx(sender, coin, signature, list(to), list(amounts), items=len(to))


def coin_transfer_tx(sender: bytes, coin: bytes, to: bytes, amount: int) -> Tx:
    return call_tx(sender, coin, "transfer(address,uint256)", to, amount)


def coin_admin_transfer_batch_tx(
    sender: bytes,
    coin: bytes,
    from_: Sequence[bytes],
    to: Sequence[bytes],
    amounts: Sequence[int],
) -> Tx:
    signature = "adminTransferBatch(address[],address[],uint256[])"
    args = (list(from_), list(to), list(amounts))
    return call_tx(sender, coin, signature, *args, items=len(amounts))


def coin_burn_tx(sender: bytes, coin: bytes, amount: int) -> Tx:
    return call_tx(sender, coin, "burn(uint256)", amount)


def coin_admin_burn_batch_tx(
    sender: bytes, coin: bytes, from_: Sequence[bytes], amounts: Sequence[int]
) -> Tx:
    signature = "adminBurnBatch(address[],uint256[])"
    return call_tx(sender, coin, signature, list(from_), list(amounts), items=len(amounts))


def deposit_native_tx(sender: bytes, distributor: bytes, amount: int) -> Tx:
    return call_tx(sender, distributor, "depositNative()", value=amount)


def deposit_token_tx(sender: bytes, distributor: bytes, token: bytes, amount: int) -> Tx:
    return call_tx(sender, distributor, "depositToken(address,uint256)", token, amount)


def claim_batch_tx(
    sender: bytes, distributor: bytes, dividend_id: int, token_ids: Sequence[int]
) -> Tx:
    signature = "claimBatch(uint256,uint256[])"
    return call_tx(
        sender, distributor, signature, dividend_id, list(token_ids), items=len(token_ids)
    )


def withdraw_native_tx(sender: bytes, distributor: bytes) -> Tx:
    return call_tx(sender, distributor, "withdrawNative()")
