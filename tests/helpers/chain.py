"""The chain a test indexes (anvil and the AudiFi factory on it), and the indexer on it:
settings for an in-process pipeline, or the daemon as a subprocess (its environment,
start, stop and exit). Every process started here is stopped here, by PID."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.catchup import catch_up
from indexer.config import Settings, load_settings
from indexer.devchain.anvil import Anvil
from indexer.follow import follow
from indexer.health import Health
from indexer.step import Pipeline
from tests.helpers.polling import wait_until

INDEXER = [sys.executable, "-m", "indexer"]


@dataclass(frozen=True)
class Chain:
    anvil: Anvil
    factory: bytes
    factory_block: int

    @property
    def url(self) -> str:
        return self.anvil.url


def settings_for(database_url: str, chain: Chain, **overrides: object) -> Settings:
    return load_settings(
        database_url=database_url,
        rpc_url=chain.url,
        factory_address="0x" + chain.factory.hex(),
        **overrides,
    )


def settings_through(
    database_url: str, chain: Chain, rpc_urls: Sequence[str] = (), **extra: Any
) -> Settings:
    """`settings_for` indexing from the factory's block, through `rpc_urls` when given."""
    return settings_for(
        database_url,
        chain,
        rpc_urls=list(rpc_urls),
        start_block=chain.factory_block,
        **extra,
    )


def indexer_env(database_url: str, chain: Chain, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIFI_")}
    env.update(
        AUDIFI_DATABASE_URL=database_url,
        AUDIFI_RPC_URL=chain.url,
        AUDIFI_FACTORY_ADDRESS="0x" + chain.factory.hex(),
        AUDIFI_METRICS_PORT="0",
        AUDIFI_LOG_FORMAT="json",
        AUDIFI_FATAL_LINGER="0",
    )
    env.update(extra)
    return env


def run_cli(database_url: str, chain: Chain, *args: str) -> subprocess.CompletedProcess[str]:
    """`audifi-indexer ARGS` against the chain, to its end: its exit code and output."""
    return subprocess.run(
        [*INDEXER, *args],
        env=indexer_env(database_url, chain),
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def running_indexer(
    args: list[str], env: dict[str, str], *, log_path: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `audifi-indexer ARGS`; on exit stop exactly that process (SIGTERM, then SIGKILL)."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen([*INDEXER, *args], env=env, stdout=out, stderr=out)
    try:
        yield process
    finally:
        stop_process(process)
        if log_path:
            out.close()  # type: ignore[union-attr]


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> int:
    """SIGTERM exactly this process, SIGKILL it after `timeout`; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def wait_exit(process: subprocess.Popen[bytes], timeout: float, *, log: Path | None = None) -> int:
    """The exit code of `process`; fails the test if it still runs after `timeout` seconds
    (naming the end of `log`, when given). The process is left to the caller to stop."""

    def what() -> str:
        tail = f":\n{log.read_text()[-3000:]}" if log is not None and log.exists() else ""
        return f"process {process.pid} to exit{tail}"

    wait_until(lambda: process.poll() is not None, timeout=timeout, what=what)
    return process.returncode


async def following(
    p: Pipeline, *, poll_interval: float, stop: asyncio.Event, health: Health
) -> None:
    """The real follow driver, with the daemon's catch-up."""
    await follow(
        p,
        poll_interval=poll_interval,
        stop=stop,
        health=health,
        catch_up=lambda a, b, head: catch_up(
            p, a, b, head=head, concurrency=2, stop=stop, health=health
        ),
    )
