"""A local anvil for tests, the demo and the benchmark, plus thin anvil JSON-RPC helpers.

The process is started from the platform binary inside node_modules, not the
`node_modules/.bin/anvil` Node wrapper: the wrapper forwards SIGTERM but not SIGKILL, so
killing it by PID could orphan the real node. Whoever starts an Anvil stops it, by PID.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from indexer.devchain.rpc import RpcClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BINARY_ENV = "AUDIFI_ANVIL_BIN"
DEFAULT_CHAIN_ID = 31337
# Big enough that one mined block can hold thousands of batch transactions.
DEFAULT_BLOCK_GAS_LIMIT = 10_000_000_000
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class AnvilError(RuntimeError):
    """anvil could not be found, started or stopped."""


def anvil_binary() -> Path:
    """$AUDIFI_ANVIL_BIN, else the native anvil of the project's node_modules."""
    if env := os.environ.get(BINARY_ENV):
        return Path(env)
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    package = PROJECT_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}"
    binary = package / "bin" / "anvil"
    if not binary.exists():
        raise AnvilError(f"no anvil at {binary}: run `make install` (or set {BINARY_ENV})")
    return binary


def free_port() -> int:
    """A port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Anvil:
    """A running anvil process; `stop()` (or leaving the `with` block) ends exactly it."""

    def __init__(
        self, process: subprocess.Popen[bytes], *, port: int, log_path: Path, owns_log: bool
    ) -> None:
        self.process = process
        self._owns_log = owns_log
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.rpc = RpcClient(self.url)

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> Anvil:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, n_bytes: int = 4000) -> str:
        """The end of anvil's output, for error messages."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-n_bytes:].decode(errors="replace")

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM (anvil writes --dump-state then), SIGKILL after `timeout`; the exit code.

        Idempotent. Guarantees the process is reaped when it returns.
        """
        self.rpc.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._owns_log:
            self.log_path.unlink(missing_ok=True)
        return self.process.returncode


def start_anvil(
    *,
    block_time: float | None = None,
    no_mining: bool = False,
    accounts: int = 10,
    chain_id: int = DEFAULT_CHAIN_ID,
    gas_limit: int = DEFAULT_BLOCK_GAS_LIMIT,
    load_state: Path | None = None,
    dump_state: Path | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
    ready_timeout: float = 30.0,
) -> Anvil:
    """Starts anvil on a free port and returns once it answers eth_chainId.

    Mining: automine by default, `block_time` for interval mining, `no_mining` for
    mining only on evm_mine/anvil_mine. Transactions are ordered first-in first-out so a
    workload's events come out in the order it sent them. `extra_args` must not set the
    port. Raises AnvilError (with anvil's output) if it does not come up; no process is
    left behind in that case.
    """
    args = [
        f"--accounts={accounts}",
        f"--chain-id={chain_id}",
        f"--gas-limit={gas_limit}",
        "--order=fifo",
        "--host=127.0.0.1",
    ]
    if block_time is not None:
        args.append(f"--block-time={block_time}")
    elif no_mining:
        args.append("--no-mining")
    if load_state is not None:
        args.append(f"--load-state={load_state}")
    if dump_state is not None:
        args.append(f"--dump-state={dump_state}")
    return _start([str(anvil_binary()), *args, *extra_args], chain_id, log_path, ready_timeout)


def _start(argv: list[str], chain_id: int, log_path: Path | None, timeout: float) -> Anvil:
    """Spawns and waits; retries on a new port if another process took the free one."""
    log = log_path or _temp_log()
    output = ""
    for _ in range(3):
        anvil = _spawn(argv, log, owns_log=log_path is None)
        try:
            ready = _wait_ready(anvil, chain_id, timeout)
        except BaseException:
            anvil.stop()
            raise
        if ready:
            return anvil
        output = anvil.log_tail()
        anvil.stop()
        if "in use" not in output:
            break
    raise AnvilError(f"anvil did not start:\n{output}")


def _temp_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
    os.close(fd)
    return Path(name)


def _spawn(argv: list[str], log: Path, *, owns_log: bool) -> Anvil:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, f"--port={port}"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Anvil(process, port=port, log_path=log, owns_log=owns_log)


def _wait_ready(anvil: Anvil, chain_id: int, timeout: float) -> bool:
    """Polls eth_chainId until it answers, the process exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and anvil.running():
        try:
            answer = anvil.rpc.call("eth_chainId")
        except (ConnectionError, OSError):
            time.sleep(0.02)
            continue
        if int(answer, 16) != chain_id:
            raise AnvilError(f"port {anvil.port} answers chain {answer}, not {chain_id}")
        return True
    return False


# Thin wrappers over anvil's test methods: names as in anvil, ints in and out.


def mine(rpc: RpcClient, blocks: int = 1) -> None:
    """Mines `blocks` blocks now, with every pending transaction that fits."""
    if blocks == 1:
        rpc.call("evm_mine")
    else:
        rpc.call("anvil_mine", [hex(blocks)])


def set_automine(rpc: RpcClient, enabled: bool) -> None:
    rpc.call("evm_setAutomine", [enabled])


def snapshot(rpc: RpcClient) -> str:
    """An id for `revert`; reverting to it drops every later block and snapshot."""
    snapshot_id: str = rpc.call("evm_snapshot")
    return snapshot_id


def revert(rpc: RpcClient, snapshot_id: str) -> bool:
    return bool(rpc.call("evm_revert", [snapshot_id]))


def reorg(
    rpc: RpcClient, depth: int, tx_block_pairs: Sequence[tuple[dict[str, Any] | str, int]] = ()
) -> None:
    """Replaces the last `depth` blocks (same height); txs go at offsets 0..depth-1."""
    rpc.call("anvil_reorg", [depth, [[tx, offset] for tx, offset in tx_block_pairs]])


def rollback(rpc: RpcClient, depth: int = 1) -> None:
    """Drops the last `depth` blocks; the head goes backwards, nothing is re-mined."""
    rpc.call("anvil_rollback", [depth])


def block_number(rpc: RpcClient) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def dev_accounts(rpc: RpcClient) -> list[bytes]:
    """The unlocked accounts, in anvil's order."""
    return [bytes.fromhex(a[2:]) for a in rpc.call("eth_accounts")]
