"""PgBouncer for the tests: Debian's /usr/sbin/pgbouncer in transaction mode on a free port,
in front of the tests' PostgreSQL, with a server pool so small (2 connections per database
and user) that one client's consecutive transactions land on different server connections.

Each `running_pgbouncer` starts its own process from a generated ini, waits until it
listens, and stops exactly that process (by PID) when the `with` block ends. Without the
binary the test is skipped, except in CI (CI=true), where it fails: there it must run."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from indexer.store.db import timeouts
from tests.helpers.chain import stop_process
from tests.helpers.polling import wait_until

PGBOUNCER: Final = Path("/usr/sbin/pgbouncer")
TOOLS: Final = Path(__file__).resolve().parents[2] / "deploy" / "tools.sh"
POOL_SIZE: Final = 2


def pgbouncer_binary() -> Path:
    """The binary, installed by deploy/tools.sh if missing; skips the test without it,
    outside CI."""
    if not PGBOUNCER.exists():
        subprocess.run(["bash", str(TOOLS)], check=False, timeout=900)
    if not PGBOUNCER.exists():
        reason = (
            f"{PGBOUNCER} is missing and deploy/tools.sh could not install it (needs root "
            "and apt-get): install the Debian package 'pgbouncer'"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return PGBOUNCER


@dataclass(frozen=True, slots=True)
class PgBouncer:
    port: int
    user: str  # the server's login, which PgBouncer accepts without a password
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, database_url: str) -> str:
        """`database_url`'s database, through this PgBouncer."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}{urlsplit(database_url).path}"

    async def console(self, command: str) -> None:
        """Run an admin command (RECONNECT, PAUSE, ...) on PgBouncer's console."""
        conn = await asyncpg.connect(
            f"postgresql://{self.user}@127.0.0.1:{self.port}/pgbouncer", statement_cache_size=0
        )
        try:
            await conn.execute(command)  # the console speaks the simple protocol only
        finally:
            await conn.close()


async def set_role_defaults(database_url: str, *, statement_timeout_ms: int = 60_000) -> None:
    """Give the URL's role, in its database, the timeouts the indexer needs behind a
    transaction pooler (what AUDIFI_DB_STATEMENT_TIMEOUT_MS=`statement_timeout_ms` asks)."""
    database = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(database_url)
    try:
        for name, value in timeouts(statement_timeout_ms).items():
            await conn.execute(
                f'alter role current_user in database "{database}" set {name} = {value}'
            )
    finally:
        await conn.close()


@contextmanager
def running_pgbouncer(
    server_dsn: str, workdir: Path, *, ignore_startup_parameters: Sequence[str] = ()
) -> Iterator[PgBouncer]:
    """PgBouncer (pool_mode=transaction) in front of the server of `server_dsn`, for every
    database on it, accepting the server's user without a password."""
    binary = pgbouncer_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    ini = workdir / "pgbouncer.ini"
    user = urlsplit(server_dsn).username or "postgres"
    ini.write_text(_ini(server_dsn, user, workdir, port, ignore_startup_parameters))
    log = workdir / "pgbouncer.log"
    # PgBouncer refuses to run as root; it reads its files before dropping to -u's user.
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with open(log, "wb") as out:
        process = subprocess.Popen([str(binary), *as_user, str(ini)], stdout=out, stderr=out)
    bouncer = PgBouncer(port, user, log, process)
    try:
        wait_until(
            lambda: _listening(bouncer), timeout=15, what=lambda: f"pgbouncer:\n{log.read_text()}"
        )
        yield bouncer
    finally:
        stop_process(process)


def _ini(server_dsn: str, user: str, workdir: Path, port: int, ignored: Sequence[str]) -> str:
    server = urlsplit(server_dsn)
    # A server on a unix socket (the embedded one) names its directory in ?host=.
    host = server.hostname or parse_qs(server.query).get("host", ["127.0.0.1"])[0]
    login = f" user={user}" + (f" password={server.password}" if server.password else "")
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    return "\n".join(
        [
            "[databases]",
            f"* = host={host} port={server.port or 5432}{login}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {workdir / 'users.txt'}",
            f"admin_users = {user}",
            "pool_mode = transaction",
            f"default_pool_size = {POOL_SIZE}",
            "max_client_conn = 200",
            f"ignore_startup_parameters = {','.join(ignored)}" if ignored else "",
            "",
        ]
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(bouncer: PgBouncer) -> bool:
    if bouncer.process.poll() is not None:
        raise AssertionError(f"pgbouncer exited:\n{bouncer.log.read_text()}")
    try:
        socket.create_connection(("127.0.0.1", bouncer.port), timeout=1).close()
    except OSError:
        return False
    return True
