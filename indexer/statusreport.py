"""`audifi-indexer status`: what an operator asks first, gathered and rendered."""

from __future__ import annotations

from typing import Any

from indexer.step import Pipeline
from indexer.store.ops import discrepancies, event_counts, last_reorg


async def collect(p: Pipeline) -> dict[str, Any]:
    head = await p.source.head()
    position = await p.store.position()
    counts = await event_counts(p.store.pool, p.store.chain_id)
    reorg = await last_reorg(p.store.pool, p.store.chain_id)
    indexed = position.checkpoint.number if position.checkpoint else None
    spans = await p.store.coverage()
    found = await discrepancies(p.store.pool, p.store.chain_id)
    return {
        "chain_id": p.store.chain_id,
        "head_block": head,
        "indexed_block": indexed,
        "lag_blocks": head - indexed if indexed is not None else None,
        "tracked_contracts": len(p.registry(position).addresses(up_to=head)),
        "committed_ranges": [[span.from_block, span.to_block] for span in spans],
        "audited_block": (await p.store.audit_position()).audited_to,
        "discrepancies": {
            "by_kind": found.by_kind,
            "last_block": found.last_block,
            "last_at": found.last_at.isoformat() if found.last_at else None,
        },
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
            "cause": reorg.cause,
        },
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"chain id           {report['chain_id']}",
        f"head block         {report['head_block']}",
        f"indexed block      {report['indexed_block']}",
        f"lag (blocks)       {report['lag_blocks']}",
        f"tracked contracts  {report['tracked_contracts']}",
        f"committed ranges   {_ranges(report['committed_ranges'])}",
        f"audited up to      {_audited(report['audited_block'])}",
        f"discrepancies      {_discrepancies(report['discrepancies'])}",
    ]
    lines += [f"  {kind:<17}{n}" for kind, n in report["events"].items()]
    reorg = report["last_reorg"]
    what = "last rewind " if reorg and reorg["cause"] == "operator" else "last reorg  "
    lines.append(
        "last reorg         none"
        if reorg is None
        else f"{what}       {reorg['detected_at']} "
        f"{'to block' if reorg['cause'] == 'operator' else 'fork'} {reorg['fork_block']} "
        f"depth {reorg['depth']} events reverted {reorg['events_reverted']}"
        + (" (asked for by an operator)" if reorg["cause"] == "operator" else "")
    )
    return "\n".join(lines)


def _ranges(spans: list[list[int]]) -> str:
    if not spans:
        return "none"
    shown = ", ".join(f"{a}..{b}" for a, b in spans[:5])
    return shown + (f" and {len(spans) - 5} more" if len(spans) > 5 else "")


def _audited(block: int) -> str:
    return "nothing yet" if block < 0 else f"block {block}"


def _discrepancies(found: dict[str, Any]) -> str:
    if not found["by_kind"]:
        return "none found"
    kinds = ", ".join(f"{kind} {n}" for kind, n in found["by_kind"].items())
    return f"{kinds} (all healed; last block {found['last_block']} at {found['last_at']})"
