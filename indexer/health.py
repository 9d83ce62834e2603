"""Liveness, readiness and lag, served with the metrics on one small HTTP server.

/healthz: the loop turned recently. /readyz on the leader: database and node answer,
the watchdog finds no stall, and the lag is under AUDIFI_READY_MAX_LAG_BLOCKS, i.e.
caught up and healthy; on a
standby: its database answers, so it can take over ("standby (leader: NAME)").
Nothing else is served: no configuration, no version of a dependency.
"""

from __future__ import annotations

import asyncio
import math
import time

import prometheus_client
from aiohttp import web

from indexer import metrics
from indexer.errors import DatabaseUnavailable, IndexMoved, LeaseLost
from indexer.step import StepResult
from indexer.store.state import Store

_ALIVE_SECONDS = 60.0


# Unknown (NaN) until the first step has read the checkpoint and the head, so that a
# restarted process never exports a lag of 0 it has not measured.
_MEASURED = (
    metrics.CHAIN_HEAD_BLOCK,
    metrics.INDEXED_BLOCK,
    metrics.LAG_BLOCKS,
    metrics.LAG_SECONDS,
)


class Health:
    """What the follower last saw; lag metrics are set from the stored checkpoint."""

    def __init__(self, store: Store | None, *, max_lag_blocks: int) -> None:
        self.store = store  # None while the daemon waits for its database and node
        self.max_lag_blocks = max_lag_blocks
        self.last_turn = time.monotonic()
        self.last_ok = 0.0
        self.lag_blocks: int | None = None
        self.halted: str | None = None
        self.failing = False
        self.failure = ""  # the dependency the last failed step failed on, and why
        self.standby_of: str | None = None  # the leader's name while this replica stands by
        self.stalled: str | None = None  # why, while the watchdog finds progress stalled
        self.head_read_at = time.monotonic()  # when the node's head was last read
        metrics.HEAD_AGE_SECONDS.set_function(self._head_age)
        for gauge in _MEASURED:
            gauge.set(math.nan)
        metrics.UP.set(0)

    def _head_age(self) -> float:
        """Only a process that follows reads the head: elsewhere (a standby, a backfill,
        before the database and node answer) its age is unknown."""
        if self.store is None or self.standby_of is not None:
            return math.nan
        return time.monotonic() - self.head_read_at

    def failed(self, error: BaseException) -> None:
        """The last step failed: not ready, saying on what, until one succeeds."""
        self.last_turn = time.monotonic()
        self.failing = True
        self.failure = _which(error)
        metrics.UP.set(0)

    def stepped(self, result: StepResult) -> None:
        """Record a successful step and set the lag metrics from what it committed."""
        if result.checkpoint is None:
            self.last_turn = self.last_ok = self.head_read_at = time.monotonic()
            self.failing = False
            return
        self.progressed(
            result.checkpoint.number, head=result.head, timestamp=result.checkpoint_time
        )

    def progressed(self, indexed: int, *, head: int, timestamp: int | None = None) -> None:
        """Record that everything up to `indexed` is committed with the node at `head`
        (after a step, or per batch of a catch-up); `timestamp` is block `indexed`'s."""
        self.last_turn = self.last_ok = self.head_read_at = time.monotonic()
        self.failing = False
        self.lag_blocks = max(0, head - indexed)
        metrics.CHAIN_HEAD_BLOCK.set(head)
        metrics.INDEXED_BLOCK.set(indexed)
        metrics.LAG_BLOCKS.set(self.lag_blocks)
        metrics.LAST_PROGRESS_TIMESTAMP.set(time.time())
        if self.lag_blocks == 0:
            metrics.LAG_SECONDS.set(0)
        else:  # unknown without the block's timestamp
            metrics.LAG_SECONDS.set(
                math.nan if timestamp is None else max(0.0, time.time() - timestamp)
            )
        metrics.UP.set(1 if self.lag_blocks <= self.max_lag_blocks else 0)

    def standing_by(self, leader: str) -> None:
        """A standby whose database answers is healthy and ready: ready to take over. It
        indexes nothing, so it exports no lag or progress (NaN): only the leader's count."""
        self.last_turn = self.last_ok = time.monotonic()
        self.failing = False
        self.standby_of = leader
        self.lag_blocks = None
        for gauge in (*_MEASURED, metrics.LAST_PROGRESS_TIMESTAMP):
            gauge.set(math.nan)
        metrics.UP.set(1)

    def leading(self) -> None:
        """Leading from now on: ready once caught up, as measured by the steps."""
        self.standby_of = None
        metrics.UP.set(0)

    def halt(self, reason: str) -> None:
        """A fatal error: stay unready until the process exits."""
        self.halted = reason
        metrics.UP.set(0)

    def alive(self) -> bool:
        return time.monotonic() - self.last_turn < _ALIVE_SECONDS

    async def ready(self) -> tuple[bool, str]:
        if self.halted is not None:
            return False, f"halted: {self.halted}"
        if self.store is None:
            return False, "waiting for the database and the node"
        if self.stalled is not None:
            return False, self.stalled
        if self.standby_of is not None:  # ready to take over while its database answers
            down = await self._database_down()
            return (
                (False, f"standby; {down}")
                if down
                else (True, f"standby (leader: {self.standby_of})")
            )
        if self.lag_blocks is None:
            return False, "not caught up yet"
        down = await self._database_down()
        if down:
            return False, down
        if self.failing:
            unknown = time.monotonic() - self.head_read_at
            head = f"; the node's head unknown for {unknown:.0f}s" if unknown >= 5 else ""
            return False, f"the last step failed on {self.failure}{head}"
        if time.monotonic() - self.last_ok > _ALIVE_SECONDS:
            return False, "no successful step recently"
        if self.lag_blocks > self.max_lag_blocks:
            return False, f"lag {self.lag_blocks} blocks"
        return True, "ok"

    async def _database_down(self) -> str | None:
        """Why the database does not answer, or None; never raises (a probe reports)."""
        assert self.store is not None
        try:
            await asyncio.wait_for(self.store.ping(), timeout=2.0)
        except Exception as e:  # the readiness probe reports any failure, it never raises
            metrics.UP.set(0)
            return f"database: {type(e.__cause__ or e).__name__}"
        return None


def _which(error: BaseException) -> str:
    """The dependency an error came from, for an operator: the node, the database, or
    another writer, with the error's one line."""
    if isinstance(error, DatabaseUnavailable):
        return f"the database: {error}"
    if isinstance(error, IndexMoved | LeaseLost):
        return f"another writer: {error}"
    return f"the node: {error}"


async def _metrics(_: web.Request) -> web.Response:
    body = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


def _app(health: Health) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        if health.alive():
            return web.Response(status=200, text="ok\n")
        return web.Response(status=503, text=f"the loop has not turned for {_ALIVE_SECONDS:.0f}s\n")

    async def readyz(_: web.Request) -> web.Response:
        ok, why = await health.ready()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    app = web.Application()
    app.add_routes(
        [web.get("/metrics", _metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)]
    )
    return app


async def serve(health: Health, *, host: str, port: int) -> web.AppRunner:
    """Start the HTTP server; the caller stops it with `await runner.cleanup()`."""
    runner = web.AppRunner(_app(health), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
