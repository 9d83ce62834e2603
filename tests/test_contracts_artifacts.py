"""The committed contract artifacts match the sources and expose exactly the spec's events."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from indexer.devchain.contracts import load_artifact

ROOT = Path(__file__).resolve().parents[1]

# Copied from the spec (onchain-events.md): the interface, not derived from the contracts.
SPEC_EVENTS = {
    "AudiFiFactory": {
        "MasterDeployed(bytes16 indexed masterId, address indexed nft, "
        "address indexed distributor, uint256 totalSupply)",
        "ArtistCoinDeployed(bytes16 indexed artistId, address indexed token, "
        "string symbol, uint8 decimals)",
    },
    "MasterNFT": {
        "Transfer(address indexed from, address indexed to, uint256 indexed tokenId)",
    },
    "ArtistCoin": {
        "Transfer(address indexed from, address indexed to, uint256 value)",
    },
    "DividendDistributor": {
        "DividendDeposited(uint256 indexed dividendId, address indexed payer, "
        "address token, uint256 amount, uint256 amountPerShare)",
        "DividendClaimed(uint256 indexed dividendId, address indexed holder, "
        "uint256 indexed tokenId, uint256 amount)",
    },
}


def _abi_event(entry: dict[str, object]) -> str:
    inputs = entry["inputs"]
    assert isinstance(inputs, list)
    params = ", ".join(
        f"{i['type']}{' indexed' if i['indexed'] else ''} {i['name']}" for i in inputs
    )
    return f"{entry['name']}({params})"


def test_artifacts_are_up_to_date() -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed to compile the contracts"
    result = subprocess.run(
        [node, "indexer/devchain/compile.mjs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_each_contract_declares_exactly_the_spec_events() -> None:
    for name, expected in SPEC_EVENTS.items():
        abi = load_artifact(name).abi
        events = {_abi_event(e) for e in abi if e["type"] == "event"}
        assert events == expected, name
        assert load_artifact(name).bytecode, name
