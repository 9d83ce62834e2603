"""`audifi-indexer status`: what an operator asks first, gathered and rendered."""

from __future__ import annotations

from typing import Any

import asyncpg

from indexer.step import Pipeline
from indexer.store.ops import discrepancies, event_counts, last_reorg
from indexer.store.replica import Lag, measure_lag
from indexer.store.state import Store


async def collect(p: Pipeline, replica: asyncpg.Pool | None = None) -> dict[str, Any]:
    """The index as its readers see it: read from `replica` when given (refused with
    NotAStandby unless it is a standby of the primary; its lag behind the primary is the
    `replica` entry), else from the primary."""
    chain_id = p.store.chain_id
    lag = None if replica is None else await measure_lag(p.store.pool, replica, chain_id)
    store = p.store if replica is None else Store(replica, chain_id, reorg_window=p.reorg_window)
    head = await p.source.head()
    position = await store.position()
    counts = await event_counts(store.pool, chain_id)
    reorg = await last_reorg(store.pool, chain_id)
    indexed = position.checkpoint.number if position.checkpoint else None
    spans = await store.coverage()
    found = await discrepancies(store.pool, chain_id)
    return {
        "chain_id": chain_id,
        "head_block": head,
        "indexed_block": indexed,
        "lag_blocks": head - indexed if indexed is not None else None,
        "tracked_contracts": len(p.registry(position).addresses(up_to=head)),
        "committed_ranges": [[span.from_block, span.to_block] for span in spans],
        "audited_block": (await store.audit_position()).audited_to,
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
        "replica": None if lag is None else _replica(lag),
    }


def _replica(lag: Lag) -> dict[str, Any]:
    return {
        "caught_up": lag.caught_up,
        "lag_blocks": lag.blocks,
        "lag_bytes": lag.bytes,
        "lag_seconds": None if lag.seconds is None else round(lag.seconds, 3),
        "primary_indexed_block": lag.primary_block,
        "replica_indexed_block": lag.replica_block,
        "replay_paused": lag.paused,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"read from          {_read_from(report['replica'])}",
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


def _read_from(replica: dict[str, Any] | None) -> str:
    if replica is None:
        return "the primary"
    if replica["caught_up"]:
        return "the replica, caught up with the primary"
    blocks = replica["lag_blocks"]
    seconds = replica["lag_seconds"]
    return (
        f"the replica, BEHIND the primary by {'?' if blocks is None else blocks} blocks "
        f"(its checkpoint {replica['replica_indexed_block']}, the primary's "
        f"{replica['primary_indexed_block']}) and {replica['lag_bytes']:,} bytes of WAL"
        + ("" if seconds is None else f", at most {seconds:,.1f} s stale")
        + (", replay paused" if replica["replay_paused"] else "")
    )


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
