"""The backend's Drizzle schema, generated from this project's migrations.

`python -m tests.drizzle` (make drizzle) migrates a fresh database with the project's
runner, runs `drizzle-kit pull` on it and rewrites `sql/drizzle/schema.ts` and
`relations.ts`; `tests/test_drizzle.py` fails when they are stale. drizzle-kit 0.31 leaves
two gaps, filled here so that the output type-checks and does not change with the calendar:

- bytea columns come out as `unknown(...)` under a TODO; they become `bytea(...)`, the
  custom type of `sql/drizzle/types.ts` (values are Node Buffers);
- range-partitioned tables (`audit_logs`, `webhooks_log`) come out as their partitions,
  named by month. Each parent is written from its default partition's columns (its
  indexes are the partition's, so they are left out) and the partitions are left out.

Tables are sorted by name, so the file does not depend on the catalog's order.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import pg

ROOT = Path(__file__).resolve().parents[1]
DRIZZLE_DIR = ROOT / "sql" / "drizzle"
GENERATED = ("schema.ts", "relations.ts")
_PULL_TIMEOUT_S = 120.0

_BYTEA = re.compile(
    r"\t// TODO: failed to parse database type 'bytea(?:\[\])?'\n(\t\w+: )unknown\("
)
_BLOCK_START = re.compile(r"^export const (\w+) = ", re.MULTILINE)
_TABLE_NAME = re.compile(r'^export const \w+ = pg(?:Table|MaterializedView|View)\("(\w+)"')
_PARTITIONS = """
select child.relname as partition, parent.relname as parent, child.relpartbound is not null
    and pg_get_expr(child.relpartbound, child.oid) = 'DEFAULT' as is_default
from pg_inherits i
join pg_class child on child.oid = i.inhrelid
join pg_class parent on parent.oid = i.inhparent
join pg_namespace n on n.oid = parent.relnamespace
where n.nspname = 'public' and parent.relkind = 'p'
"""


def pull(database_url: str) -> dict[str, str]:
    """What drizzle-kit pull makes of the database at `database_url`, completed."""
    with tempfile.TemporaryDirectory(prefix="drizzle-") as out:
        env = {**os.environ, "DRIZZLE_DATABASE_URL": database_url, "DRIZZLE_OUT": out}
        done = subprocess.run(
            [str(ROOT / "node_modules" / ".bin" / "drizzle-kit"), "pull"],
            cwd=DRIZZLE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=_PULL_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(f"drizzle-kit pull failed:\n{done.stdout}\n{done.stderr}")
        pulled = {name: (Path(out) / name).read_text() for name in GENERATED}
    partitions = asyncio.run(_partitions(database_url))
    return {
        "schema.ts": _complete_schema(pulled["schema.ts"], partitions),
        "relations.ts": pulled["relations.ts"],
    }


async def _partitions(database_url: str) -> dict[str, tuple[str, bool]]:
    """partition -> (its parent, whether it is the default partition)."""
    conn = await pg.connect(database_url)
    try:
        rows = await conn.fetch(_PARTITIONS)
    finally:
        await conn.close()
    return {r["partition"]: (r["parent"], r["is_default"]) for r in rows}


def _complete_schema(text: str, partitions: dict[str, tuple[str, bool]]) -> str:
    text = _BYTEA.sub(r"\1bytea(", text)
    if "unknown(" in text:
        raise RuntimeError("drizzle-kit left a column type it could not parse: see 'unknown('")
    header, blocks = _split(text)
    tables: dict[str, str] = {}
    for block in blocks:
        name = _table_name(block)
        parent, is_default = partitions.get(name, (None, False))
        if parent is None:
            tables[name] = block
        elif is_default:
            tables[parent] = _as_parent(block, name, parent)
    header = header.replace(
        ' } from "drizzle-orm"\n', ' } from "drizzle-orm"\nimport { bytea } from "./types"\n', 1
    )
    return header + "".join(tables[name] for name in sorted(tables))


def _split(text: str) -> tuple[str, list[str]]:
    """The imports, and one block per `export const`, each with its trailing blank lines."""
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    if not starts:
        raise RuntimeError("drizzle-kit pull wrote no table")
    ends = [*starts[1:], len(text)]
    blocks = [text[s:e].rstrip("\n") + "\n\n" for s, e in zip(starts, ends, strict=True)]
    return text[: starts[0]], blocks


def _table_name(block: str) -> str:
    found = _TABLE_NAME.match(block)
    if found is None:
        raise RuntimeError(f"not a table or view: {block.splitlines()[0]}")
    return found.group(1)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _as_parent(block: str, partition: str, parent: str) -> str:
    """A default partition's columns under its parent's name."""
    columns_end = block.find("\n}, (table) => [")
    if columns_end >= 0:
        block = block[:columns_end] + "\n});\n\n"
    block = block.replace(
        f"export const {_camel(partition)} ", f"export const {_camel(parent)} ", 1
    )
    note = "// Range-partitioned by month (sql/README.md); partitions are not listed.\n"
    return note + block.replace(f'pgTable("{partition}"', f'pgTable("{parent}"', 1)


def generated(admin_dsn: str) -> dict[str, str]:
    """The schema of a database freshly migrated by this project's runner."""
    databases = pg.Databases(admin_dsn)
    try:
        name = databases.create_migrated()
        try:
            return pull(databases.url(name))
        finally:
            databases.drop(name)
    finally:
        databases.close()


def checked_in() -> dict[str, str]:
    return {name: (DRIZZLE_DIR / name).read_text() for name in GENERATED}


def main() -> int:
    server = pg.find_server()
    try:
        files = generated(server.admin_dsn)
    finally:
        if server.stop is not None:
            server.stop()
    for name, text in files.items():
        (DRIZZLE_DIR / name).write_text(text)
        print(f"wrote {(DRIZZLE_DIR / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
