"""TLS to PostgreSQL, and a password that is really checked: a private cluster with
ssl=on, a test CA, and pg_hba accepting only TLS with scram-sha-256. The indexer's
sslmode/sslrootcert settings work; a wrong CA, no TLS or a wrong password fail in one
clear line; the password never shows in logs, errors, /metrics or `status`."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from indexer.config import load_settings
from indexer.devchain.anvil import free_port
from indexer.service import open_pool
from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, wait_exit
from tests.helpers.chainstate import mismatches, oracle
from tests.helpers.livechain import LiveChain, sparse_chain
from tests.helpers.ops import PrivatePostgres, get, json_lines
from tests.helpers.polling import wait_until

PASSWORD = "tls-Pw-9f3b"  # what must never be printed


@dataclass(frozen=True)
class TlsServer:
    server: PrivatePostgres
    ca: Path  # signed the server's certificate
    other_ca: Path  # did not

    def url(self, *, password: str = PASSWORD, host: str = "localhost", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        base = f"postgresql://postgres:{password}@{host}:{self.server.port}/audifi"
        return f"{base}?{query}" if query else base

    def verified(self, **extra: str) -> str:
        return self.url(sslmode="verify-full", sslrootcert=str(self.ca), **extra)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory: Path) -> None:
    """A CA, a server certificate it signs (localhost, 127.0.0.1) and an unrelated CA."""
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=AudiFi test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
            cwd=directory,
        )  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr", cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
        cwd=directory,
    )  # fmt: skip


def _give_to_server(server: PrivatePostgres, *names: str, source: Path) -> None:
    for name in names:
        target = server.datadir / name
        target.write_bytes((source / name).read_bytes())
        target.chmod(0o600)
        if server.user is not None:
            entry = pwd.getpwnam(server.user)
            os.chown(target, entry.pw_uid, entry.pw_gid)


async def _prepare(trusting_url: str) -> None:
    conn = await asyncpg.connect(trusting_url)
    try:
        await conn.execute(f"alter role postgres password '{PASSWORD}'")
        await conn.execute("create database audifi")
    finally:
        await conn.close()


async def _reload(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("select pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    certs = tmp_path_factory.mktemp("certs")
    _certificates(certs)
    server = PrivatePostgres()
    try:
        _give_to_server(server, "server.crt", "server.key", source=certs)
        with (server.datadir / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
            conf.write("password_encryption = 'scram-sha-256'\n")
        server.start()
        trusting = server.url()
        asyncio.run(_prepare(trusting))
        # The first line only lets PrivatePostgres see that the server is up.
        (server.datadir / "pg_hba.conf").write_text(
            "hostssl postgres postgres 127.0.0.1/32 trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 reject\n"
        )
        asyncio.run(_reload(trusting))
        found = TlsServer(server, certs / "ca.crt", certs / "other-ca.crt")
        asyncio.run(pg.migrate_to_head(found.verified()))
        yield found
    finally:
        server.remove()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveChain]:
    with sparse_chain(seed=83, events=200) as chain:
        yield chain


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INDEXER, *args], env=env, capture_output=True, text=True, timeout=60)


async def _pool_is_tls(url: str) -> tuple[bool, str]:
    pool = await open_pool(load_settings(database_url=url))
    try:
        row = await pool.fetchrow(
            "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"
        )
        assert row is not None
        return bool(row["ssl"]), str(row["version"])
    finally:
        await pool.close()


def test_verify_full_with_the_right_ca_works_and_is_encrypted(
    tls: TlsServer, live: LiveChain
) -> None:
    url = tls.verified()
    assert asyncio.run(_pool_is_tls(url))[0] is True
    env = indexer_env(url, live.chain)
    args = [
        "backfill",
        "--from-block",
        str(live.chain.factory_block),
        "--to-block",
        str(live.head()),
    ]
    done = _cli(args, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert asyncio.run(mismatches(url, oracle(live.chain.url, live.chain.factory))) == []
    assert PASSWORD not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong-ca", "SSLCertVerificationError"),
        ("no-tls", "rejects"),
        ("wrong-password", "authentication failed"),
    ],
)
def test_a_bad_tls_or_password_setting_is_one_clear_line(
    case: str, says: str, tls: TlsServer, live: LiveChain
) -> None:
    url = {
        "wrong-ca": tls.url(sslmode="verify-full", sslrootcert=str(tls.other_ca)),
        "no-tls": tls.url(sslmode="disable"),
        "wrong-password": tls.verified().replace(PASSWORD, "not-" + PASSWORD),
    }[case]
    result = _cli(["migrate", "status"], indexer_env(url, live.chain))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0], lines[0]
    assert PASSWORD not in result.stderr + result.stdout


def test_the_password_shows_nowhere(tls: TlsServer, live: LiveChain, tmp_path: Path) -> None:
    """The daemon over TLS with the real password: its logs (through a server restart,
    when it says what it waits for), /metrics, /healthz and `status` never show it."""
    url = tls.verified()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    env = indexer_env(url, live.chain, AUDIFI_METRICS_PORT=str(port))
    with running_indexer(["run"], env, log_path=str(log)) as daemon:
        wait_until(lambda: (a := get(base + "/readyz")) and a[0] == 200, timeout=60, what="ready")
        tls.server.stop()
        wait_until(
            lambda: "DatabaseUnavailable" in log.read_text(), timeout=30, what="a database error"
        )
        tls.server.start()
        wait_until(lambda: (a := get(base + "/readyz")) and a[0] == 200, timeout=60, what="ready")
        pages = [get(base + path) for path in ("/metrics", "/healthz", "/readyz")]
        shown = [_cli(["status"], env), _cli(["status", "--json"], env)]
        daemon.send_signal(signal.SIGTERM)
        assert wait_exit(daemon, 15) == 0
    for page in pages:
        assert page is not None and PASSWORD not in page[1]
    for result in shown:
        assert result.returncode == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    assert json.loads(shown[1].stdout)["lag_blocks"] == 0
    text = log.read_text()
    assert PASSWORD not in text
    json_lines(text)
