"""What the operations tests need around the daemon: its HTTP endpoints and metrics, a
real Prometheus server, a PostgreSQL cluster a test can stop and start, and checks on
log lines. Every process started here is stopped here, by PID."""

from __future__ import annotations

import asyncio
import json
import math
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from indexer.devchain.anvil import free_port
from tests.helpers import pg
from tests.helpers.chain import stop_process
from tests.helpers.polling import wait_until

SECRET = "s3cret-ops-pw"
PROMETHEUS = "/usr/bin/prometheus"


def get(url: str, *, timeout: float = 5.0) -> tuple[int, str] | None:
    """(status, body) of a GET, whatever the status; None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def get_if(url: str, code: int) -> tuple[int, str] | None:
    """(status, body) when the GET answers with `code`, else None."""
    answer = get(url)
    return answer if answer is not None and answer[0] == code else None


def status(url: str) -> int | None:
    answer = get(url)
    return answer[0] if answer else None


def parse_metrics(body: str, *, keep: tuple[str, ...] = ()) -> dict[str, float]:
    """Samples of a /metrics body: 'name' or 'name{k="v",...}' -> value (NaN kept as NaN).
    The chain_id label (the same on every sample of one process) is left out of the keys
    unless `keep` names it."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = ",".join(
                f'{k}="{v}"'
                for k, v in sorted(sample.labels.items())
                if k != "chain_id" or k in keep
            )
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def scrape(base: str) -> dict[str, float] | None:
    answer = get(base + "/metrics")
    return parse_metrics(answer[1]) if answer and answer[0] == 200 else None


def is_nan(value: float | None) -> bool:
    return value is not None and math.isnan(value)


def with_secret(url: str) -> tuple[str, str]:
    """`url` with a password (SECRET when it has none), and the password to look for.

    Servers the tests use trust local connections, so an added password is ignored."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        return url, parts.password
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or "postgres"
    return parts._replace(netloc=f"{user}:{SECRET}@{host}").geturl(), SECRET


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as one JSON object; fails naming the first that is not."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(record, dict), f"not a JSON object: {line!r}"
        records.append(record)
    return records


class Prometheus:
    """A real Prometheus server scraping one target every second."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: audifi-indexer\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        stop_process(self.process)

    def wait_ready(self) -> None:
        wait_until(
            lambda: self.process.poll() is not None or status(self.url + "/-/ready") == 200,
            timeout=30,
            what="Prometheus to start",
        )
        assert self.process.poll() is None, self.log_path.read_text()[-2000:]

    def _api(self, path: str, **params: str) -> Any:
        answer = get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert answer is not None and answer[0] == 200, answer
        payload = json.loads(answer[1])
        assert payload["status"] == "success", payload
        return payload["data"]

    def value(self, expr: str) -> float | None:
        """The instant value of a single-series expression; None when it has no result."""
        result = self._api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def samples(self, metric: str, since: float, until: float) -> list[tuple[float, float]]:
        """Every scraped (timestamp, value) of `metric` in [since, until] (Unix seconds)."""
        window = max(1, math.ceil(until - since))
        result = self._api("query", query=f"{metric}[{window}s]", time=str(until))["result"]
        if not result:
            return []
        return [(float(t), float(v)) for t, v in result[0]["values"] if t >= since]


@contextmanager
def prometheus(workdir: Path, target: str) -> Iterator[Prometheus]:
    server = Prometheus(workdir, target)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _server_binaries() -> Path:
    """Debian's PostgreSQL server programs when installed, else the pgserver wheel's."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if debian:
        return debian[-1].parent
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free TCP port that a test stops and restarts.
    With `initdb` False its data directory is left empty, for a base backup to fill."""

    def __init__(self, *, initdb: bool = True) -> None:
        self.bin = _server_binaries()
        self.user = _server_user()
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="audifi-ops-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        if not initdb:
            return
        subprocess.run(
            [
                str(self.bin / "initdb"),
                *("-D", str(self.datadir), "-U", "postgres"),
                *("--auth=trust", "--encoding=UTF8", "--no-sync"),
            ],
            user=self.user,
            check=True,
            capture_output=True,
        )

    def url(self, *, password: str = SECRET) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                *("-D", str(self.datadir), "-p", str(self.port)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
                *("-c", "fsync=off", "-c", "logging_collector=off"),
            ],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.accepts, timeout=30, what="the private PostgreSQL to start")

    def accepts(self) -> bool:
        return asyncio.run(pg.answers(self.url(), within=2))

    def stop(self) -> None:
        """Fast shutdown (SIGINT) by PID: sessions are ended, new connections refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def migrate(self) -> None:
        asyncio.run(pg.migrate_to_head(self.url()))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()
