"""What an index indexes and who may write it: the recorded identity per chain, and the
leader lease whose (holder, epoch) every follower commit checks inside its transaction.

Lease times are the database's (`now()`), so replicas' clocks never matter. Taking the
lease over increments its epoch; a leader's transaction checks its epoch first thing,
and is tagged with it (application_name), so the new leader ends any transaction the old
one still has open (paused mid-batch, it would hold the writer lock). What an old leader
committed before that is a valid batch: the new leader's own commits are fenced against
the position they were fetched on, and refetch when it moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from indexer.errors import LeaseLost
from indexer.store.db import database_errors

_LEADER_APPLICATION = "audifi-indexer leader {chain_id}:{epoch}"


@dataclass(frozen=True, slots=True)
class Identity:
    chain_id: int
    factory: bytes
    first_block: int


@dataclass(frozen=True, slots=True)
class Fence:
    """The token a leader's commits carry."""

    holder: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Lease:
    holder: str
    epoch: int
    expires_in: float  # seconds by the database's clock; negative once expired


async def read_identity(pool: asyncpg.Pool, chain_id: int) -> Identity | None:
    async with database_errors("reading the index's identity"):
        row = await pool.fetchrow(
            "select factory_address, first_block from indexer_identity where chain_id = $1",
            chain_id,
        )
    return None if row is None else Identity(chain_id, bytes(row[0]), row[1])


async def indexed_chains(pool: asyncpg.Pool) -> list[int]:
    async with database_errors("reading the indexed chains"):
        rows = await pool.fetch("select chain_id from indexer_identity order by chain_id")
    return [r[0] for r in rows]


async def record_identity(pool: asyncpg.Pool, identity: Identity) -> Identity:
    """Record `identity` unless one exists for its chain; returns what is recorded (a
    concurrent first start may have won)."""
    async with database_errors("recording the index's identity"):
        await pool.execute(
            "insert into indexer_identity (chain_id, factory_address, first_block) "
            "values ($1, $2, $3) on conflict (chain_id) do nothing",
            identity.chain_id,
            identity.factory,
            identity.first_block,
        )
    recorded = await read_identity(pool, identity.chain_id)
    assert recorded is not None
    return recorded


_ACQUIRE = """
insert into indexer_leases as l (chain_id, holder, epoch, expires_at)
values ($1, $2, 1, now() + make_interval(secs => $3))
on conflict (chain_id) do update set
    holder = excluded.holder,
    epoch = l.epoch + 1,
    acquired_at = now(),
    renewed_at = now(),
    expires_at = excluded.expires_at
where l.expires_at <= now()
returning epoch
"""

_RENEW = """
update indexer_leases
set renewed_at = now(), expires_at = now() + make_interval(secs => $4)
where chain_id = $1 and holder = $2 and epoch = $3
returning epoch
"""


async def acquire_lease(
    pool: asyncpg.Pool, chain_id: int, holder: str, seconds: float
) -> Fence | None:
    """Take the chain's lease if it is free or expired, then end the transactions the
    previous leaders still have open; None while another holds it."""
    async with database_errors("taking the leader lease"):
        epoch = await pool.fetchval(_ACQUIRE, chain_id, holder, seconds)
        if epoch is None:
            return None
        await pool.execute(
            _END_OLD_LEADERS, f"audifi-indexer leader {chain_id}:%", _tag(chain_id, epoch)
        )
    return Fence(holder, epoch)


_END_OLD_LEADERS = """
select pg_terminate_backend(pid) from pg_stat_activity
where datname = current_database() and application_name like $1 and application_name <> $2
"""


def _tag(chain_id: int, epoch: int) -> str:
    return _LEADER_APPLICATION.format(chain_id=chain_id, epoch=epoch)


async def renew_lease(pool: asyncpg.Pool, chain_id: int, fence: Fence, seconds: float) -> bool:
    """Extend the lease; False when another replica has taken it over since."""
    async with database_errors("renewing the leader lease"):
        epoch = await pool.fetchval(_RENEW, chain_id, fence.holder, fence.epoch, seconds)
    return epoch is not None


async def release_lease(pool: asyncpg.Pool, chain_id: int, fence: Fence) -> None:
    """Let a standby take over at once (a clean shutdown or a rolling update)."""
    async with database_errors("releasing the leader lease"):
        await pool.execute(
            "update indexer_leases set expires_at = now(), renewed_at = now() "
            "where chain_id = $1 and holder = $2 and epoch = $3",
            chain_id,
            fence.holder,
            fence.epoch,
        )


async def current_lease(pool: asyncpg.Pool, chain_id: int) -> Lease | None:
    async with database_errors("reading the leader lease"):
        row = await pool.fetchrow(
            "select holder, epoch, extract(epoch from expires_at - now())::float8 "
            "from indexer_leases where chain_id = $1",
            chain_id,
        )
    return None if row is None else Lease(row[0], row[1], row[2])


async def check_fence(conn: asyncpg.Connection, chain_id: int, fence: Fence) -> None:
    """First thing in a leader's writing transaction: tag the session with the fence's
    epoch (until the transaction ends) and raise LeaseLost unless it still holds the lease."""
    row = await conn.fetchrow(
        "select set_config('application_name', $2, true), l.holder, l.epoch "
        "from (select 1) one left join indexer_leases l on l.chain_id = $1",
        chain_id,
        _tag(chain_id, fence.epoch),
    )
    assert row is not None  # the left join always yields one row
    if (row["holder"], row["epoch"]) != (fence.holder, fence.epoch):
        now = "nobody" if row["holder"] is None else f"{row['holder']} (epoch {row['epoch']})"
        raise LeaseLost(
            f"the leader lease of epoch {fence.epoch} was taken over: {now} holds it now"
        )
