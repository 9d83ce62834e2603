"""The connection pool, its session settings, and the database's errors mapped to ours."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast
from urllib.parse import urlsplit

import asyncpg

from indexer.errors import DatabaseUnavailable, Fatal

_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection left mid-protocol by a kill
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.TooManyConnectionsError,
)


async def create_pool(
    dsn: str, *, min_size: int, max_size: int, statement_timeout_ms: int
) -> asyncpg.Pool:
    """A pool whose sessions suit bulk writes and never hang forever. Its errors name the
    server and the database (never the password)."""
    where = _where(dsn)
    settings = {
        "application_name": "audifi-indexer",
        "statement_timeout": str(statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(max(statement_timeout_ms, 60_000) * 2),
        "lock_timeout": str(statement_timeout_ms),
        "jit": "off",
        # Plan each execution with the current statistics: tables grow from empty during a
        # backfill, and a plan cached while they were small (a seq scan) stays slow.
        "plan_cache_mode": "force_custom_plan",
    }
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings=settings,
            command_timeout=None,
        )
    except socket.gaierror as e:
        raise DatabaseUnavailable(f"connecting to PostgreSQL at {where}: no such host ({e})") from e
    except _TRANSIENT as e:
        raise DatabaseUnavailable(
            f"connecting to PostgreSQL at {where}: {type(e).__name__}: {e}"
        ) from e
    except asyncpg.exceptions.InvalidPasswordError as e:
        raise Fatal(f"connecting to PostgreSQL at {where}: authentication failed") from e
    except asyncpg.exceptions.InvalidCatalogNameError as e:
        raise Fatal(f"connecting to PostgreSQL at {where}: the database does not exist") from e
    except asyncpg.PostgresError as e:  # e.g. rejected by pg_hba.conf
        raise Fatal(f"connecting to PostgreSQL at {where}: {type(e).__name__}: {e}") from e
    assert pool is not None
    return pool


def _where(dsn: str) -> str:
    """host:port/database of a PostgreSQL URL, for messages (no user, no password)."""
    parts = urlsplit(dsn)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path or '/'}"


@asynccontextmanager
async def database_errors(doing: str) -> AsyncIterator[None]:
    """Wrap driver errors: connection trouble is retryable, the rest is fatal and loud."""
    try:
        yield
    except _TRANSIENT as e:
        raise DatabaseUnavailable(f"{doing}: {type(e).__name__}: {e}") from e
    except asyncpg.exceptions.UniqueViolationError as e:
        raise Fatal(f"{doing}: unexpected duplicate, refusing to continue: {e}") from e
    except asyncpg.PostgresError as e:
        raise Fatal(f"{doing}: {type(e).__name__}: {e}") from e


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection, typed as the plain connection the query functions take."""
    async with pool.acquire() as conn:
        try:
            yield cast(asyncpg.Connection, conn)
        except _TRANSIENT:
            # Never hand a connection a kill left broken back to the pool.
            with contextlib.suppress(asyncpg.exceptions.InterfaceError):
                conn.terminate()
            raise
