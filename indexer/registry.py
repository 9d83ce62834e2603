"""The contracts being followed: the factory and every child it deployed."""

from __future__ import annotations

from collections.abc import Iterable

from indexer import metrics
from indexer.chain import (
    ArtistCoinDeployed,
    ContractKind,
    Event,
    MasterDeployed,
    Quarantined,
    TrackedContract,
)


class Registry:
    """Address -> tracked contract. A child is followed from its creation block on.

    Built from what is committed (`Position.contracts`) plus what a batch discovers in
    its own range, never kept across steps: a process cannot fetch with a registry older
    than the checkpoint it continues from."""

    def __init__(self, factory: TrackedContract, children: Iterable[TrackedContract] = ()) -> None:
        self.factory = factory
        self._by_address: dict[bytes, TrackedContract] = {factory.address: factory}
        self.add(children)

    def get(self, address: bytes) -> TrackedContract | None:
        return self._by_address.get(address)

    def addresses(self, *, up_to: int) -> list[bytes]:
        return [c.address for c in self._by_address.values() if c.since_block <= up_to]

    def add(self, contracts: Iterable[TrackedContract]) -> None:
        for contract in contracts:
            self._by_address[contract.address] = contract

    def new(self, contracts: Iterable[TrackedContract]) -> list[TrackedContract]:
        """Those of `contracts` this registry does not track as they are."""
        return [c for c in contracts if self._by_address.get(c.address) != c]

    def __len__(self) -> int:
        return len(self._by_address)

    def copy(self) -> Registry:
        clone = Registry(self.factory)
        clone._by_address = dict(self._by_address)
        return clone

    def publish(self) -> None:
        """Export how many contracts of each kind are followed."""
        counts = dict.fromkeys(ContractKind, 0)
        for contract in self._by_address.values():
            counts[contract.kind] += 1
        for kind, count in counts.items():
            metrics.TRACKED_CONTRACTS.labels(kind.value).set(count)


def children_of(items: Iterable[Event | Quarantined]) -> list[TrackedContract]:
    """The contracts that factory events in `items` deployed."""
    found: list[TrackedContract] = []
    for item in items:
        block = item.log.block_number
        if isinstance(item, MasterDeployed):
            found.append(TrackedContract(item.nft, ContractKind.MASTER_NFT, block, item.master_id))
            found.append(
                TrackedContract(item.distributor, ContractKind.DISTRIBUTOR, block, item.master_id)
            )
        elif isinstance(item, ArtistCoinDeployed):
            found.append(
                TrackedContract(item.token, ContractKind.ARTIST_COIN, block, item.artist_id)
            )
    return found
