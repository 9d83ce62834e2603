"""Find where the node's chain and the stored one part, bounded by the reorg window.

Only a hash that differs from the stored one counts: a node that merely lacks
a block (a lagging replica, or anvil rebuilding a branch) is waited out.
"""

from __future__ import annotations

from indexer import metrics
from indexer.chain import Checkpoint
from indexer.errors import NotReady, ReorgTooDeep
from indexer.source import ChainSource
from indexer.store.state import Store


async def find_fork(source: ChainSource, store: Store, checkpoint: Checkpoint) -> Checkpoint:
    """The newest stored block the node still has, by hash, below a block it has differently.

    Blocks the node lacks prove nothing, but a block it has with another hash proves that
    every stored block from there up is orphaned, even those above its head (a fork onto a
    shorter branch). Raises NotReady when the newest stored block the node has is still
    ours (it lags, or is still building the new branch): there is nothing to undo yet.
    Raises ReorgTooDeep when no block in the window survives: the fork is below what we
    can repair."""
    stored = await store.window(up_to=checkpoint.number)
    stored[checkpoint.number] = checkpoint.hash
    node = await source.headers(stored.keys())
    forked = False
    for number in sorted(stored, reverse=True):
        header = node[number]
        if header is None:
            continue
        if header.hash == stored[number]:
            if not forked:
                raise NotReady(f"node has block {number} as stored but not the blocks above")
            return Checkpoint(number, header.hash)
        forked = True
    if not forked:
        raise NotReady(f"node has none of the stored blocks up to {checkpoint.number}")
    lowest = min(stored)
    metrics.REORGS_TOO_DEEP.inc()
    raise ReorgTooDeep(
        f"chain forked below block {lowest}, deeper than the reorg window: stop, then run "
        f"`audifi-indexer rewind --to-block N` with N below the fork and start again",
        fork_below=lowest,
    )
