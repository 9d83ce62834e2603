"""The connection pool, its session settings, and the database's errors mapped to ours."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, cast
from urllib.parse import urlsplit

import asyncpg

from indexer.config import PoolMode
from indexer.errors import ConfigError, DatabaseUnavailable, Fatal

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


def timeouts(statement_timeout_ms: int) -> dict[str, str]:
    """The settings without which a statement, a lock wait or a forgotten transaction could
    hang forever (values in milliseconds, as pg_settings shows them); 0 disables one."""
    return {
        "statement_timeout": str(statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(max(statement_timeout_ms, 60_000) * 2),
        "lock_timeout": str(statement_timeout_ms),
    }


# Plan each execution with the current statistics: tables grow from empty during a
# backfill, and a plan cached while they were small (a seq scan) stays slow. (Through a
# transaction pooler every statement is unnamed and planned afresh anyway.)
_TUNING: Final = {"jit": "off", "plan_cache_mode": "force_custom_plan"}
_APPLICATION: Final = {"application_name": "audifi-indexer"}
_STATEMENT_CACHE_SIZE: Final = 100  # asyncpg's default: named statements, per session


def session_settings(statement_timeout_ms: int) -> dict[str, str]:
    """What a session-mode pool sends at connect besides application_name (and reads back)."""
    return timeouts(statement_timeout_ms) | _TUNING


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    statement_timeout_ms: int,
    pool_mode: PoolMode = "session",
) -> asyncpg.Pool:
    """A pool whose sessions suit bulk writes and never hang forever. Its errors name the
    server and the database (never the password).

    In session mode the settings travel in the startup packet. Behind a transaction pooler
    (PgBouncer) a session is no longer ours: only application_name is sent (PgBouncer
    refuses other startup parameters), statements are unnamed (no prepared statement
    outlives its transaction's server connection), and the timeouts must be the database's
    own defaults for the role, which every server connection starts with. Either way the
    settings are read back before the pool is returned; a pool whose sessions lack them is
    refused (ConfigError naming AUDIFI_DB_POOL_MODE), so a wrong mode cannot go unnoticed."""
    where = _where(dsn)
    session = pool_mode == "session"
    wanted = session_settings(statement_timeout_ms) if session else timeouts(statement_timeout_ms)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings=(_APPLICATION | wanted) if session else _APPLICATION,
            # 0: unnamed statements, parsed again at each execution: asyncpg then sends
            # Parse, Bind and Execute together, which a pooler hands to one server.
            statement_cache_size=_STATEMENT_CACHE_SIZE if session else 0,
            command_timeout=None,
        )
        assert pool is not None
        try:
            await _check_settings(pool, wanted, pool_mode=pool_mode, where=where)
        except BaseException:
            await pool.close()
            raise
    except asyncpg.exceptions.ProtocolViolationError as e:  # before its parent in _TRANSIENT
        raise _refused_at_startup(e, pool_mode=pool_mode, where=where) from e
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
    return pool


_UNSUPPORTED_PARAMETER: Final = "unsupported startup parameter"


def _refused_at_startup(
    e: asyncpg.exceptions.ProtocolViolationError, *, pool_mode: PoolMode, where: str
) -> Exception:
    """PgBouncer's answer to a startup parameter it does not know is a configuration error;
    its other protocol errors (a full pool, a paused database) pass, like a server's."""
    message = str(e)
    if _UNSUPPORTED_PARAMETER not in message:
        return DatabaseUnavailable(f"connecting to PostgreSQL at {where}: {message}")
    parameter = message.rpartition(":")[2].strip()
    if pool_mode == "session":
        return ConfigError(
            f"AUDIFI_DB_POOL_MODE is session, but {where} refuses the startup parameter "
            f"{parameter}: a connection pooler (PgBouncer) is in front of PostgreSQL; set "
            "AUDIFI_DB_POOL_MODE=transaction (deploy/README.md, PgBouncer)"
        )
    return ConfigError(
        f"AUDIFI_DB_POOL_MODE is transaction, and {where} refuses even the startup "
        f"parameter {parameter}: a pooler other than PgBouncer? (deploy/README.md, PgBouncer)"
    )


_READ_SETTINGS: Final = """
select name, setting, quote_ident(current_user) as role, quote_ident(current_database()) as db
from pg_settings where name = any($1::text[]) order by name
"""


async def _check_settings(
    pool: asyncpg.Pool, wanted: dict[str, str], *, pool_mode: PoolMode, where: str
) -> None:
    """Refuse a pool whose sessions do not have the `wanted` settings: in session mode a
    pooler in front ignored them, in transaction mode the role's defaults lack them."""
    rows = await pool.fetch(_READ_SETTINGS, list(wanted))
    wrong = {r["name"]: r["setting"] for r in rows if r["setting"] != wanted[r["name"]]}
    if not wrong:
        return
    found = ", ".join(f"{name} is {value}, not {wanted[name]}" for name, value in wrong.items())
    if pool_mode == "session":
        raise ConfigError(
            f"AUDIFI_DB_POOL_MODE is session, but the sessions at {where} did not take the "
            f"settings the indexer connects with ({found}): a connection pooler in front "
            "ignores them; set AUDIFI_DB_POOL_MODE=transaction (deploy/README.md, PgBouncer)"
        )
    role, db = rows[0]["role"], rows[0]["db"]
    fixes = "; ".join(
        f"alter role {role} in database {db} set {name} = {wanted[name]}" for name in wrong
    )
    raise ConfigError(
        f"AUDIFI_DB_POOL_MODE is transaction, so the timeouts must be the role's defaults, "
        f"but at {where} {found}; run: {fixes} (new server connections start with them: "
        "RECONNECT in PgBouncer's console)"
    )


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
