"""The backend's read queries (sql/queries/*.sql): name -> SQL text and header metadata.

Each file is one SQL statement after header comment lines `-- name: …`, `-- endpoint: …`,
`-- params: $1 name type, …` and `-- budget_ms: N`; other leading comment lines are the
query's description. Pure: reads files, no database. Used by the tests, the query-plan
benchmark and the backend's own checks, so the format is the contract (sql/queries/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

QUERIES_DIR = Path(__file__).resolve().parents[1] / "sql" / "queries"
PARAM_TYPES = frozenset({"uuid", "bigint", "int", "text"})
_HEADER = re.compile(r"^-- (name|endpoint|params|budget_ms): (.+)$")
_PARAM = re.compile(r"^\$(\d+) ([a-z_][a-z0-9_]*) ([a-z]+)$")


class QueryFileError(ValueError):
    """A query file that does not follow the format."""


@dataclass(frozen=True, slots=True)
class Param:
    position: int  # $n
    name: str
    type: str  # one of PARAM_TYPES


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    endpoint: str
    params: tuple[Param, ...]
    budget_ms: float
    description: str
    sql: str  # the statement, without the header and the trailing semicolon
    path: Path


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, Query]:
    """Every `*.sql` query in `directory`, by name; raises QueryFileError on a bad file."""
    queries = [parse_query(path.read_text(), path) for path in sorted(directory.glob("*.sql"))]
    by_name = {q.name: q for q in queries}
    if len(by_name) != len(queries):
        raise QueryFileError(f"two query files in {directory} share a name")
    return by_name


def parse_query(text: str, path: Path) -> Query:
    """One query file's header and statement; the name must be the file's stem."""
    header: dict[str, str] = {}
    description: list[str] = []
    lines = text.splitlines()
    body_at = next((i for i, line in enumerate(lines) if not line.startswith("--")), len(lines))
    for line in lines[:body_at]:
        match = _HEADER.match(line)
        if match is None:
            description.append(line.removeprefix("--").strip())
        elif match[1] in header:
            raise QueryFileError(f"{path}: {match[1]} given twice")
        else:
            header[match[1]] = match[2].strip()
    missing = {"name", "endpoint", "params", "budget_ms"} - header.keys()
    if missing:
        raise QueryFileError(f"{path}: header lacks {sorted(missing)}")
    if header["name"] != path.stem:
        raise QueryFileError(f"{path}: name {header['name']!r} is not the file's name")
    sql = "\n".join(lines[body_at:]).strip().removesuffix(";").rstrip()
    if not sql or ";" in sql:
        raise QueryFileError(f"{path}: expected exactly one statement")
    return Query(
        name=header["name"],
        endpoint=header["endpoint"],
        params=_params(header["params"], path),
        budget_ms=float(header["budget_ms"]),
        description=" ".join(line for line in description if line),
        sql=sql,
        path=path,
    )


def _params(text: str, path: Path) -> tuple[Param, ...]:
    """`$1 user_id uuid, $2 limit int` (or `none`), numbered 1..n in order."""
    if text == "none":
        return ()
    params = []
    for position, part in enumerate(text.split(","), start=1):
        match = _PARAM.match(part.strip())
        if match is None or int(match[1]) != position or match[3] not in PARAM_TYPES:
            raise QueryFileError(f"{path}: bad parameter {part.strip()!r}")
        params.append(Param(position, match[2], match[3]))
    return tuple(params)
