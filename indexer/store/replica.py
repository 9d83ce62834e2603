"""The read replica (AUDIFI_DATABASE_REPLICA_URL): that it is a standby of the primary,
and how far behind the primary it is.

Lag in three units, each measured so that it cannot flatter or frighten:
- bytes: WAL the replica has not replayed, against the primary's position read first
  (0: it has replayed everything the primary had written when measured);
- seconds: 0 once caught up in bytes; while behind, the primary's clock minus the commit
  time of the last transaction the replica replayed: at most that stale. (The usual
  now() - pg_last_xact_replay_timestamp() alone grows on an idle primary, which is not lag.)
- blocks: the primary's checkpoint against the one readers of the replica see, what
  matters to them (0 once caught up in bytes).

Only reads go to the replica; these queries need no privilege beyond connecting.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from indexer.errors import ConfigError
from indexer.store.db import connection, database_errors

_POLL_SECONDS = 0.05  # between checks of the replica's replay position while waiting

_PRIMARY = """
select
    pg_current_wal_lsn() as lsn,
    now() as at,
    (select system_identifier from pg_control_system()) as system_id,
    current_database() as database,
    (select block_number from indexer_checkpoints where chain_id = $1) as block
"""

# Asked first: whether the replica is a standby of the primary's database at all.
_REPLICA_IDENTITY = """
select
    pg_is_in_recovery() as standby,
    (select system_identifier from pg_control_system()) as system_id,
    current_database() as database
"""

_REPLICA = """
select
    pg_last_wal_replay_lsn() as lsn,
    pg_last_xact_replay_timestamp() as replayed_at,
    pg_is_wal_replay_paused() as paused,
    (select block_number from indexer_checkpoints where chain_id = $1) as block
"""

_REPLAYED = "select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)"


class NotAStandby(ConfigError):
    """AUDIFI_DATABASE_REPLICA_URL names a server that is not a standby of the primary's
    database: reading it could show data the primary never had, and no lag is defined."""


@dataclass(frozen=True, slots=True)
class Lag:
    """The replica against the primary, measured once (primary first)."""

    primary_lsn: int
    bytes: int
    seconds: float | None  # None: behind, and it has replayed no commit since it started
    primary_block: int | None  # the checkpoint on each side (None: no checkpoint yet)
    replica_block: int | None
    paused: bool  # replay paused (pg_wal_replay_pause()): it stays behind until resumed

    @property
    def caught_up(self) -> bool:
        return self.bytes == 0

    @property
    def blocks(self) -> int | None:
        """Blocks between the two checkpoints (either way: after a rewind the replica
        still shows blocks the primary dropped); None while the replica has none."""
        if self.caught_up or self.primary_block == self.replica_block:
            return 0
        if self.primary_block is None or self.replica_block is None:
            return None
        return abs(self.primary_block - self.replica_block)


async def measure_lag(primary: asyncpg.Pool, replica: asyncpg.Pool, chain_id: int) -> Lag:
    """The replica's lag behind the primary for chain `chain_id`. Raises NotAStandby
    when the replica is not a standby of the primary's database, and the database
    errors (DatabaseUnavailable, Fatal) of either side."""
    async with database_errors("reading the primary's WAL position"):
        here = await primary.fetchrow(_PRIMARY, chain_id)
    async with database_errors("reading what the replica is"):
        identity = await replica.fetchrow(_REPLICA_IDENTITY)
    assert here is not None and identity is not None
    _require_standby(here, identity)
    async with database_errors("reading the replica's replay position"):
        there = await replica.fetchrow(_REPLICA, chain_id)
    assert there is not None
    behind = max(0, here["lsn"] - there["lsn"])
    seconds: float | None = 0.0
    if behind and there["replayed_at"] is None:
        seconds = None
    elif behind:
        seconds = max(0.0, (here["at"] - there["replayed_at"]).total_seconds())
    return Lag(
        primary_lsn=here["lsn"],
        bytes=behind,
        seconds=seconds,
        primary_block=here["block"],
        replica_block=there["block"],
        paused=bool(there["paused"]),
    )


def _require_standby(primary: asyncpg.Record, replica: asyncpg.Record) -> None:
    if not replica["standby"]:
        raise NotAStandby(
            "AUDIFI_DATABASE_REPLICA_URL: the server is not a standby (pg_is_in_recovery() "
            "is false): the primary itself, or a promoted former replica whose data may "
            "differ; point it at a streaming replica of the primary, or unset it"
        )
    if replica["system_id"] != primary["system_id"]:
        raise NotAStandby(
            "AUDIFI_DATABASE_REPLICA_URL: the server is a standby of another cluster "
            f"(system identifier {replica['system_id']}, the primary's is "
            f"{primary['system_id']}); point it at a streaming replica of the primary"
        )
    if replica["database"] != primary["database"]:
        raise NotAStandby(
            f"AUDIFI_DATABASE_REPLICA_URL: names database {replica['database']!r}, "
            f"AUDIFI_DATABASE_URL {primary['database']!r}: name the same database"
        )


async def replayed(replica: asyncpg.Pool, lsn: int, *, within: float) -> bool:
    """Whether the replica replays WAL up to `lsn` within `within` seconds (polled on one
    connection held for the wait; the wait ends as soon as it has)."""
    deadline = time.monotonic() + within
    async with (
        database_errors("reading the replica's replay position"),
        connection(replica) as conn,
    ):
        while True:
            if await conn.fetchval(_REPLAYED, lsn):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
