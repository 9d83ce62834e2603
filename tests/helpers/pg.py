"""PostgreSQL for the tests: find a server, and hand out throw-away databases quickly.

The server is $AUDIFI_TEST_DATABASE_URL, else the local one at 127.0.0.1:5432
if it answers, else an embedded one (the pgserver wheel) with its data under
.pgdata/test. Databases are created and dropped over admin connections that
live on their own event-loop thread, so sync fixtures can use them whatever
loop a test runs in, and a test does not wait for the previous one's drop.
Their names carry this host and process
(audifi_test_<host>_<pid>_<n>), so a session can drop what a killed session
on this machine left behind without touching anyone else's. Logins a test creates
(new_login) are named the same way and dropped by the test (drop_login).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import asyncpg

from indexer.migrate import migrate_up

T = TypeVar("T")

TEST_DATABASE_URL_ENV: Final = "AUDIFI_TEST_DATABASE_URL"
LOCAL_DSN: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
EMBEDDED_DATA: Final = Path(__file__).resolve().parents[2] / ".pgdata" / "test"
_TIMEOUT_S: Final = 60.0
_SAFE_NAME: Final = re.compile(r"^[a-z0-9_]{1,63}$")


async def connect(url: str) -> asyncpg.Connection:
    """A plain connection to `url`; the caller closes it."""
    return await asyncpg.connect(url, timeout=10)


@dataclass(frozen=True, slots=True)
class Server:
    admin_dsn: str
    stop: Callable[[], None] | None = None  # set when this session started the server


def find_server() -> Server:
    """The server the tests use; see the module docstring for the order."""
    if url := os.environ.get(TEST_DATABASE_URL_ENV):
        return Server(url)
    if _run_in_thread(answers(LOCAL_DSN)):
        return Server(LOCAL_DSN)
    from pgserver.postgres_server import get_server  # the 'embedded' extra

    EMBEDDED_DATA.parent.mkdir(exist_ok=True)
    server = get_server(EMBEDDED_DATA, cleanup_mode="stop")
    return Server(server.get_uri(), stop=server.cleanup)


async def answers(dsn: str, *, within: float = 3.0) -> bool:
    """Whether a server accepts a connection to `dsn` within `within` seconds."""
    try:
        conn = await asyncpg.connect(dsn, timeout=within)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a fresh thread, leaving this thread's event loop alone."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def database_url(admin_dsn: str, name: str) -> str:
    """`admin_dsn` pointed at database `name` (host, port, user and options kept)."""
    return urlsplit(admin_dsn)._replace(path="/" + name).geturl()


def pg_tool(name: str, server_version: int) -> str:
    """Path to a client program (pg_dump, psql) at least as new as the server.

    `server_version` is server_version_num's major part, e.g. 15. Falls back to
    the pgserver wheel's binaries when the one on PATH is older.
    """
    found = shutil.which(name)
    if found is not None and _major_version(found) >= server_version:
        return found
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _major_version(program: str) -> int:
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    return int(re.findall(r"\d+", out.stdout)[0])


class Databases:
    """Creates and drops this session's test databases."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
        self._host_prefix = f"audifi_test_{host}_"
        self._prefix = f"{self._host_prefix}{os.getpid()}_"
        self._names = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-admin", daemon=True)
        self._thread.start()
        self._conn = self.run(connect(admin_dsn))
        # Drops go over their own connection, one at a time, while tests run on.
        self._dropper = self.run(connect(admin_dsn))
        self._drop_lock = asyncio.Lock()
        self._drops: list[Future[None]] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the admin loop and waits for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_TIMEOUT_S)

    def url(self, name: str) -> str:
        return database_url(self.admin_dsn, name)

    def create(self, *, template: str = "template0") -> str:
        """A new database copied from `template`; returns its name."""
        name = f"{self._prefix}{next(self._names)}"
        self.run(self._conn.execute(f"create database {_ident(name)} template {_ident(template)}"))
        return name

    def create_migrated(self) -> str:
        """A new database from template0, migrated to head."""
        name = self.create()
        self.run(migrate_to_head(self.url(name)))
        return name

    def drop(self, name: str) -> None:
        """Drops `name` in the background, ending its sessions first; close() waits for it."""
        self._drops.append(asyncio.run_coroutine_threadsafe(self._drop(name), self._loop))

    async def _drop(self, name: str) -> None:
        async with self._drop_lock:
            await self._dropper.execute(f"drop database if exists {_ident(name)} with (force)")

    def drop_stale(self) -> None:
        """Drops databases left by sessions on this host whose process is gone."""
        rows = self.run(
            self._conn.fetch(
                "select datname from pg_database where starts_with(datname, $1)",
                self._host_prefix,
            )
        )
        for row in rows:
            pid = int(row["datname"].removeprefix(self._host_prefix).split("_")[0])
            if not _alive(pid):
                self.drop(row["datname"])

    def close(self) -> None:
        """Waits for the pending drops (raising the first failure), then closes."""
        try:
            for drop in self._drops:
                drop.result(_TIMEOUT_S)
        finally:
            self.run(self._conn.close())
            self.run(self._dropper.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


async def migrate_to_head(url: str) -> None:
    """Apply every migration to the database at `url`."""
    conn = await connect(url)
    try:
        await migrate_up(conn)
    finally:
        await conn.close()


def _ident(name: str) -> str:
    """Quotes a database name we generated (or a template name); refuses anything else."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"not a test database name: {name!r}")
    return f'"{name}"'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        pass
    return True


# Logins a test creates, locks out and drops.


def login_url(database_url: str, login: str, password: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{login}:{password}@{host}").geturl()


async def new_login(admin: str, role: str) -> tuple[str, str]:
    """A fresh login that is a member of `role`: (name, password). Drop it with drop_login."""
    login = f"audifi_test_{role.removeprefix('audifi_')}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    await _admin(admin, f"create role {login} login password '{password}' in role {role}")
    return login, password


async def drop_login(admin: str, login: str) -> None:
    await _admin(admin, f"drop role if exists {login}")


async def limit_connections(admin: str, login: str, limit: int) -> None:
    """Lock `login` out (0) or let it back in (-1); sessions it has keep running."""
    await _admin(admin, f"alter role {login} connection limit {int(limit)}")


async def _admin(admin: str, statement: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
