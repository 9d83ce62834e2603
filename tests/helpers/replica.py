"""A primary and its streaming replica for the read-replica tests: a PrivatePostgres
migrated to head, and a hot standby made from it by `pg_basebackup -R`, each on a free
port of its own. Both are stopped by PID (and their data removed) when the `with` ends.
Replay on the standby can be paused and resumed, to hold it behind the primary."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.helpers import pg
from tests.helpers.ops import PrivatePostgres
from tests.helpers.polling import eventually


@dataclass(frozen=True)
class Pair:
    primary: PrivatePostgres
    standby: PrivatePostgres


@contextmanager
def streaming_replica() -> Iterator[Pair]:
    """A migrated primary and a running standby that has replayed the migrations."""
    primary = PrivatePostgres()
    try:
        primary.start()
        primary.migrate()
        standby = PrivatePostgres(initdb=False)
        try:
            _base_backup(primary, standby)
            standby.start()
            asyncio.run(wait_replayed(primary.url(), standby.url()))
            yield Pair(primary, standby)
        finally:
            standby.remove()
    finally:
        primary.remove()


def _base_backup(primary: PrivatePostgres, standby: PrivatePostgres) -> None:
    """Copy the primary into the standby's empty data directory; -R writes
    standby.signal and primary_conninfo, so it starts as a streaming standby."""
    subprocess.run(
        [
            str(primary.bin / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        ],
        user=standby.user,
        check=True,
        capture_output=True,
        timeout=60,
    )


async def _value(url: str, query: str) -> object:
    conn = await pg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def replay_lsn(url: str) -> int:
    lsn = await _value(url, "select pg_last_wal_replay_lsn()")
    assert isinstance(lsn, int), f"{url} is not a standby"
    return lsn


async def wait_replayed(primary_url: str, standby_url: str, *, within: float = 30) -> None:
    """Until the standby has replayed everything the primary had written when called."""
    target = await _value(primary_url, "select pg_current_wal_lsn()")
    assert isinstance(target, int)

    async def replayed() -> bool:
        return await replay_lsn(standby_url) >= target

    await eventually(replayed, within=within, what=f"the standby to replay up to {target}")


async def pause_replay(standby_url: str) -> None:
    """Stop replay (the standby keeps receiving WAL) and wait until it has stopped."""
    await _value(standby_url, "select pg_wal_replay_pause()")

    async def paused() -> bool:
        state = await _value(standby_url, "select pg_get_wal_replay_pause_state()")
        return state == "paused"

    await eventually(paused, within=10, what="replay to pause")


async def resume_replay(standby_url: str) -> None:
    await _value(standby_url, "select pg_wal_replay_resume()")
