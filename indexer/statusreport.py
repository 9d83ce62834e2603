"""`audifi-indexer status`: what an operator asks first, gathered and rendered."""

from __future__ import annotations

from typing import Any

from indexer.step import Pipeline

_COUNTS = """
select 'nft_transfers' as kind, count(*) as n from nft_transfers where chain_id = $1
union all select 'token_transfers', count(*) from token_transfers where chain_id = $1
union all select 'dividend_events', count(*) from dividend_events where chain_id = $1
union all select 'dividend_claims', count(*) from dividend_claims where chain_id = $1
union all select 'master_contracts', count(*) from master_contracts where chain_id = $1
union all select 'artist_tokens', count(*) from artist_tokens where chain_id = $1
union all select 'quarantined', count(*) from indexer_quarantine where chain_id = $1
"""

_LAST_REORG = """
select detected_at, fork_block, depth, events_reverted from indexer_reorgs
where chain_id = $1 order by id desc limit 1
"""


async def collect(p: Pipeline) -> dict[str, Any]:
    head = await p.source.head()
    checkpoint = await p.store.checkpoint()
    rows = await p.store.pool.fetch(_COUNTS, p.store.chain_id)
    reorg = await p.store.pool.fetchrow(_LAST_REORG, p.store.chain_id)
    indexed = checkpoint.number if checkpoint else None
    return {
        "chain_id": p.store.chain_id,
        "head_block": head,
        "indexed_block": indexed,
        "lag_blocks": head - indexed if indexed is not None else None,
        "tracked_contracts": len(p.registry.addresses(up_to=head)),
        "events": {r["kind"]: r["n"] for r in rows},
        "last_reorg": None
        if reorg is None
        else {
            "detected_at": reorg["detected_at"].isoformat(),
            "fork_block": reorg["fork_block"],
            "depth": reorg["depth"],
            "events_reverted": reorg["events_reverted"],
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
