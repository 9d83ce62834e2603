"""What an index indexes and who may write it: the recorded identity per chain, and the
leader lease whose (holder, epoch) every follower commit checks inside its transaction.

Lease times are the database's (`now()`), so replicas' clocks never matter. Taking the
lease over increments its epoch under the chain's writer lock: any commit of the old
leader either finished before the takeover or fails the fence after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from indexer.errors import LeaseLost
from indexer.store.db import connection, database_errors
from indexer.store.write import lock_chain

# A standby waits this long for the writer lock before trying again next round: an old
# leader in the middle of a batch holds it until that batch commits or rolls back.
_ACQUIRE_LOCK_TIMEOUT = "2s"


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
    """Take the chain's lease if it is free or expired; None while another holds it."""
    async with (
        database_errors("taking the leader lease"),
        connection(pool) as conn,
        conn.transaction(),
    ):
        await conn.execute(f"set local lock_timeout = '{_ACQUIRE_LOCK_TIMEOUT}'")
        try:
            await lock_chain(conn, chain_id, durable=True)
        except asyncpg.exceptions.LockNotAvailableError:
            return None  # a batch is being written; the next round tries again
        epoch = await conn.fetchval(_ACQUIRE, chain_id, holder, seconds)
    return None if epoch is None else Fence(holder, epoch)


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
    """Inside a writing transaction: raise LeaseLost unless `fence` still holds the lease."""
    row = await conn.fetchrow(
        "select holder, epoch from indexer_leases where chain_id = $1", chain_id
    )
    if row is None or (row[0], row[1]) != (fence.holder, fence.epoch):
        now = "nobody" if row is None else f"{row[0]} (epoch {row[1]})"
        raise LeaseLost(
            f"the leader lease of epoch {fence.epoch} was taken over: {now} holds it now"
        )
