"""Shared fixtures: a real PostgreSQL and a fresh database per test.

pg_admin_dsn        the server (superuser DSN), for the whole session
template_db         a database migrated to head once per session (do not connect to it)
database_url        a fresh copy of template_db per test, dropped after it
empty_database_url  a fresh empty database per test (no migrations), dropped after it
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import pg


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.Server]:
    server = pg.find_server()
    yield server
    if server.stop is not None:
        server.stop()


@pytest.fixture(scope="session")
def pg_admin_dsn(pg_server: pg.Server) -> str:
    return pg_server.admin_dsn


@pytest.fixture(scope="session")
def pg_databases(pg_admin_dsn: str) -> Iterator[pg.Databases]:
    databases = pg.Databases(pg_admin_dsn)
    databases.drop_stale()
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def template_db(pg_databases: pg.Databases) -> Iterator[str]:
    name = pg_databases.create_migrated()
    yield name
    pg_databases.drop(name)


@pytest.fixture
def database_url(pg_databases: pg.Databases, template_db: str) -> Iterator[str]:
    name = pg_databases.create(template=template_db)
    yield pg_databases.url(name)
    pg_databases.drop(name)


@pytest.fixture
def empty_database_url(pg_databases: pg.Databases) -> Iterator[str]:
    name = pg_databases.create()
    yield pg_databases.url(name)
    pg_databases.drop(name)
