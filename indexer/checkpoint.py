"""The rule for moving the checkpoint (pure).

The checkpoint promises that every block up to it is indexed, on the chain its hash
names. A committed batch may keep that promise for more blocks only if it leaves no gap
and no fork: it starts at or before the block after the checkpoint, ends after it, and
its first block past the checkpoint names the checkpoint as its parent. The store
applies this rule to the checkpoint it reads under the writer lock, so concurrent
writers (the follower, backfills, a second replica) can never move it wrongly.
"""

from __future__ import annotations

from collections.abc import Mapping

from indexer.chain import BlockRef, Checkpoint


def advanced(
    stored: Checkpoint | None,
    *,
    from_block: int,
    to_block: int,
    headers: Mapping[int, BlockRef],
    window_from: int,
) -> Checkpoint | None:
    """The checkpoint after committing [from_block, to_block], or None to leave it.

    `headers` are the batch's validated headers (always both ends). Without the header of
    the block after the checkpoint (it had no logs), the link can only be taken on trust
    below the reorg window (`window_from`), where the chain no longer forks."""
    if stored is None or not from_block - 1 <= stored.number < to_block:
        return None
    end = Checkpoint(to_block, headers[to_block].hash)
    first_new = headers.get(stored.number + 1)
    if first_new is not None:
        return end if first_new.parent_hash == stored.hash else None
    return end if window_from > to_block else None
