"""The backend's Drizzle schema (sql/drizzle): generated from the migrations, current, and
type-checked as the backend would import it."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg

from tests import drizzle

TSC_TIMEOUT_S = 180.0


def test_the_checked_in_schema_is_what_the_migrations_make(database_url: str) -> None:
    assert drizzle.pull(database_url) == drizzle.checked_in(), (
        "sql/drizzle is stale: run `make drizzle` and commit the result"
    )


def test_a_migration_that_changes_a_table_makes_it_stale(database_url: str) -> None:
    asyncio.run(_execute(database_url, "alter table token_holders add column note text"))
    pulled = drizzle.pull(database_url)
    assert pulled["schema.ts"] != drizzle.checked_in()["schema.ts"]
    assert "note: text()" in pulled["schema.ts"]


async def _execute(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def test_every_bytea_column_is_typed_and_partitions_are_their_parent() -> None:
    schema = drizzle.checked_in()["schema.ts"]
    assert "unknown(" not in schema and "TODO" not in schema
    assert 'ownerAddress: bytea("owner_address").notNull()' in schema
    assert 'pgTable("audit_logs", {' in schema and 'pgTable("webhooks_log", {' in schema
    assert "audit_logs_p2" not in schema and "audit_logs_default" not in schema


def test_the_schema_and_the_backend_check_type_check() -> None:
    done = subprocess.run(
        [str(drizzle.ROOT / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", "sql/drizzle"],
        cwd=drizzle.ROOT,
        capture_output=True,
        text=True,
        timeout=TSC_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
