"""`audifi-indexer status`: what an operator asks first, gathered and rendered."""

from __future__ import annotations

from typing import Any

from indexer.step import Pipeline
from indexer.store.ops import event_counts, last_reorg


async def collect(p: Pipeline) -> dict[str, Any]:
    head = await p.source.head()
    position = await p.store.position()
    counts = await event_counts(p.store.pool, p.store.chain_id)
    reorg = await last_reorg(p.store.pool, p.store.chain_id)
    indexed = position.checkpoint.number if position.checkpoint else None
    return {
        "chain_id": p.store.chain_id,
        "head_block": head,
        "indexed_block": indexed,
        "lag_blocks": head - indexed if indexed is not None else None,
        "tracked_contracts": len(p.registry(position).addresses(up_to=head)),
        "events": {
            ("quarantined" if k == "indexer_quarantine" else k): n for k, n in counts.items()
        },
        "last_reorg": None
        if reorg is None
        else {
            "detected_at": reorg.detected_at.isoformat(),
            "fork_block": reorg.fork_block,
            "depth": reorg.depth,
            "events_reverted": reorg.events_reverted,
        },
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"chain id           {report['chain_id']}",
        f"head block         {report['head_block']}",
        f"indexed block      {report['indexed_block']}",
        f"lag (blocks)       {report['lag_blocks']}",
        f"tracked contracts  {report['tracked_contracts']}",
    ]
    lines += [f"  {kind:<17}{n}" for kind, n in report["events"].items()]
    reorg = report["last_reorg"]
    lines.append(
        "last reorg         none"
        if reorg is None
        else f"last reorg         {reorg['detected_at']} fork {reorg['fork_block']} "
        f"depth {reorg['depth']} events reverted {reorg['events_reverted']}"
    )
    return "\n".join(lines)
