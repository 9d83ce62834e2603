"""Schema migrations: numbered SQL files applied in order, each in its own transaction.

The files are `NNNN_name.up.sql` / `NNNN_name.down.sql` pairs in `sql/migrations`.
Applied versions are recorded in `schema_migrations` with the sha256 of the up
file, so a migration edited after it was applied is refused instead of leaving
databases that claim the same version with different schemas. Each migration's
transaction first takes a transaction-level advisory lock, then reads what is
applied: runners that start together take turns migration by migration, each
migration is applied once, and a runner that comes later finds nothing to do.
Nothing is held between transactions, so this works through a transaction pooler
(PgBouncer), where consecutive transactions may run on different server sessions.

Migration files must not contain transaction control (`begin`, `commit`): the
runner wraps each one in a transaction together with its bookkeeping row.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import asyncpg
import structlog

MIGRATIONS_DIR_ENV: Final = "AUDIFI_MIGRATIONS_DIR"
# The pg_advisory_xact_lock key every migration's transaction takes first: b"audifimg"
# as a big-endian bigint, 7022629597806685543. Only this module takes it.
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"audifimg", "big")

_DEFAULT_DIR: Final = Path(__file__).resolve().parent.parent / "sql" / "migrations"
_FILE_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")
_log = structlog.get_logger(__name__)

_CREATE_TABLE: Final = """
create table if not exists schema_migrations (
    version integer primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now()
)
"""
_SELECT_APPLIED: Final = "select version, name, checksum, applied_at from schema_migrations"
_RECORD: Final = "insert into schema_migrations (version, name, checksum) values ($1, $2, $3)"
_FORGET: Final = "delete from schema_migrations where version = $1"


class MigrationError(Exception):
    """The schema could not be brought to the requested state.

    Migrations that completed before the error stay applied; the failing one
    is rolled back whole.
    """


class UnknownTarget(MigrationError):
    """`--to` names no migration: a usage error."""


class MigrationFileError(MigrationError):
    """The migrations directory is missing, or a file in it is misnamed or unpaired."""


class ChecksumMismatchError(MigrationError):
    """An applied migration's up file changed after it was applied."""


class MigrationOrderError(MigrationError):
    """A migration older than the newest applied one is still pending."""


class MigrationFailedError(MigrationError):
    """A migration's SQL failed; its transaction was rolled back."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step, read from disk."""

    version: int
    name: str
    up_path: Path
    down_path: Path
    up_sql: str
    down_sql: str
    checksum: str  # sha256 of the up file, hex


@dataclass(frozen=True, slots=True)
class MigrationState:
    """What `migrate status` shows for one version found on disk or in the database."""

    version: int
    name: str
    applied_at: datetime | None  # None while pending
    checksum_ok: bool | None  # None while pending, or when applied but no file is here

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def migrations_dir(directory: Path | None = None) -> Path:
    """The argument, else $AUDIFI_MIGRATIONS_DIR, else the project's sql/migrations."""
    if directory is None:
        configured = os.environ.get(MIGRATIONS_DIR_ENV)
        directory = Path(configured) if configured else _DEFAULT_DIR
    if not directory.is_dir():
        raise MigrationFileError(
            f"migrations directory not found: {directory} (set {MIGRATIONS_DIR_ENV})"
        )
    return directory


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration in the directory, in version order.

    Refuses a `.sql` file that is misnamed, a version used by two names, version
    0 (it means "nothing applied") and an up without its down or the reverse.
    """
    root = migrations_dir(directory)
    names: dict[int, str] = {}
    paths: dict[int, dict[str, Path]] = {}
    for path in sorted(root.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None or int(match[1]) == 0:
            raise MigrationFileError(f"{path}: expected NNNN_name.up.sql or NNNN_name.down.sql")
        version, name, direction = int(match[1]), match[2], match[3]
        if names.setdefault(version, name) != name:
            raise MigrationFileError(f"{path}: version {version} is also {names[version]}")
        paths.setdefault(version, {})[direction] = path
    return [_read(root, version, names[version], paths[version]) for version in sorted(paths)]


def _read(root: Path, version: int, name: str, paths: dict[str, Path]) -> Migration:
    for direction in ("up", "down"):
        if direction not in paths:
            raise MigrationFileError(f"{root / f'{version:04d}_{name}.{direction}.sql'} is missing")
    up = paths["up"].read_bytes()
    return Migration(
        version=version,
        name=name,
        up_path=paths["up"],
        down_path=paths["down"],
        up_sql=up.decode(),
        down_sql=paths["down"].read_text(),
        checksum=hashlib.sha256(up).hexdigest(),
    )


async def migrate_up(
    conn: asyncpg.Connection, *, to: int | None = None, directory: Path | None = None
) -> list[int]:
    """Applies the pending migrations up to version `to` (default: all), oldest first.

    Returns the versions this call applied, in order: [] when another runner got
    there first; runners at work together share the versions between them. Each
    transaction refuses to go on if an applied migration's file changed or a pending
    one is older than the newest applied one.
    """
    migrations = load_migrations(directory)
    _check_target(migrations, to)
    done: list[int] = []
    while True:
        async with _turn(conn) as applied:
            _check_checksums(migrations, applied)
            pending = [
                m
                for m in migrations
                if m.version not in applied and (to is None or m.version <= to)
            ]
            _check_order(pending, applied)
            if not pending:
                return done
            await _apply(conn, pending[0])
        done.append(pending[0].version)


async def migrate_down(
    conn: asyncpg.Connection, *, to: int, directory: Path | None = None
) -> list[int]:
    """Reverts the applied migrations newer than version `to`, newest first.

    `to=0` reverts everything. Returns the versions this call reverted.
    """
    root = migrations_dir(directory)
    migrations = load_migrations(root)
    _check_target(migrations, to)
    by_version = {m.version: m for m in migrations}
    done: list[int] = []
    while True:
        async with _turn(conn) as applied:
            _check_checksums(migrations, applied)
            newest = max((v for v in applied if v > to), default=None)
            if newest is None:
                return done
            if newest not in by_version:
                raise MigrationFileError(f"cannot revert version {newest}: no file in {root}")
            await _revert(conn, by_version[newest])
        done.append(newest)


async def migration_status(
    conn: asyncpg.Connection, *, directory: Path | None = None
) -> list[MigrationState]:
    """Every version on disk or in the database, in order. Read-only: no lock, no DDL."""
    on_disk = {m.version: m for m in load_migrations(directory)}
    applied = await _applied(conn)
    return [
        _state(version, on_disk.get(version), applied.get(version))
        for version in sorted(on_disk.keys() | applied.keys())
    ]


def _state(version: int, migration: Migration | None, row: asyncpg.Record | None) -> MigrationState:
    if row is None:
        assert migration is not None  # every version is on disk or applied
        return MigrationState(version, migration.name, applied_at=None, checksum_ok=None)
    return MigrationState(
        version,
        migration.name if migration else row["name"],
        applied_at=row["applied_at"],
        checksum_ok=row["checksum"] == migration.checksum if migration else None,
    )


async def pending_versions(conn: asyncpg.Connection, *, directory: Path | None = None) -> list[int]:
    """The versions on disk not yet applied; the daemon refuses to start unless empty.

    Raises ChecksumMismatchError if an applied migration's file changed, since
    the code then expects a schema the database does not have.
    """
    migrations = load_migrations(directory)
    applied = await _applied(conn)
    _check_checksums(migrations, applied)
    return [m.version for m in migrations if m.version not in applied]


@asynccontextmanager
async def _turn(conn: asyncpg.Connection) -> AsyncIterator[dict[int, asyncpg.Record]]:
    """One transaction holding the migration lock (waiting for it), with schema_migrations
    in place, yielding what is applied as of the lock: whatever the body decides, it
    decides on what the runners before it committed. The lock ends with the transaction,
    on whichever server session a pooler ran it."""
    if conn.is_in_transaction():
        raise MigrationError("migrations need a connection that is not in a transaction")
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_TABLE)
        yield await _applied(conn)


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    if await conn.fetchval("select to_regclass('schema_migrations')") is None:
        return {}
    return {row["version"]: row for row in await conn.fetch(_SELECT_APPLIED)}


def _check_target(migrations: list[Migration], to: int | None) -> None:
    if to is not None and to != 0 and to not in {m.version for m in migrations}:
        versions = [m.version for m in migrations]
        known = f"1 to {max(versions)}" if versions else "none on disk"
        raise UnknownTarget(f"--to {to}: no such migration (versions: 0 for none, {known})")


def _check_checksums(migrations: Iterable[Migration], applied: dict[int, asyncpg.Record]) -> None:
    for migration in migrations:
        row = applied.get(migration.version)
        if row is not None and row["checksum"] != migration.checksum:
            raise ChecksumMismatchError(
                f"{migration.up_path} changed after it was applied (sha256 {row['checksum'][:12]}"
                f" applied, {migration.checksum[:12]} on disk); restore it and add a new migration"
            )


def _check_order(pending: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    newest = max(applied, default=0)
    for migration in pending:
        if migration.version < newest:
            raise MigrationOrderError(
                f"{migration.up_path} is older than applied version {newest}; renumber it"
            )


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    elapsed_ms = await _run(
        conn,
        migration.up_path,
        migration.up_sql,
        _RECORD,
        migration.version,
        migration.name,
        migration.checksum,
    )
    _log.info(
        "migration_applied", version=migration.version, name=migration.name, elapsed_ms=elapsed_ms
    )


async def _revert(conn: asyncpg.Connection, migration: Migration) -> None:
    elapsed_ms = await _run(
        conn, migration.down_path, migration.down_sql, _FORGET, migration.version
    )
    _log.info(
        "migration_reverted", version=migration.version, name=migration.name, elapsed_ms=elapsed_ms
    )


async def _run(
    conn: asyncpg.Connection, path: Path, sql: str, bookkeeping: str, *args: object
) -> int:
    """Runs one file and its schema_migrations change in the turn's transaction (rolled
    back whole when either fails); returns elapsed ms."""
    started = time.perf_counter()
    try:
        await conn.execute(sql)
        await conn.execute(bookkeeping, *args)
    except asyncpg.PostgresError as e:
        raise MigrationFailedError(f"{path} failed: {e}") from e
    return round((time.perf_counter() - started) * 1000)
