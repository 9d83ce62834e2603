"""Find where the node's chain and the stored one part, bounded by the reorg window.

Only a hash that differs from the stored one counts: a node that merely lacks
a block (a lagging replica, or anvil rebuilding a branch) is waited out.
"""

from __future__ import annotations

from indexer import metrics
from indexer.errors import NotReady, ReorgTooDeep
from indexer.source import ChainSource
from indexer.store.state import Checkpoint, Store


async def find_fork(source: ChainSource, store: Store, checkpoint: Checkpoint) -> Checkpoint:
    """The newest stored block the node still has, by hash.

    Raises NotReady while the node lacks a block it must have, and ReorgTooDeep
    when no block in the window survives: the fork is below what we can repair."""
    stored = await store.window(up_to=checkpoint.number)
    stored[checkpoint.number] = checkpoint.hash
    node = await source.headers(stored.keys())
    for number in sorted(stored, reverse=True):
        header = node[number]
        if header is None:
            raise NotReady(f"node lacks block {number} while looking for the fork point")
        if header.hash == stored[number]:
            return Checkpoint(number, header.hash)
    lowest = min(stored)
    metrics.REORGS_TOO_DEEP.inc()
    raise ReorgTooDeep(
        f"chain forked below block {lowest}, deeper than the reorg window: stop, then run "
        f"`audifi-indexer rewind --to-block N` with N below the fork and start again",
        fork_below=lowest,
    )
