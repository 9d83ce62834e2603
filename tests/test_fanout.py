"""A backfill fanned out over shards (`backfill --shard I/N`, or `--shards N` with the
pod index of a Kubernetes Indexed Job in JOB_COMPLETION_INDEX): shard processes running
at once beside a following daemon, through live activity and reorgs, end equal to the
chain and to one clean backfill; a shard run again finds nothing left to do; a daemon
started after the shards moves its checkpoint over what they committed instead of
fetching it again. Real PostgreSQL, real anvil, every indexer a subprocess."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from indexer.devchain.workload import WorkloadConfig
from indexer.errors import ConfigError
from indexer.shards import STRIPES_PER_SHARD, Shard, stripes, uncommitted
from tests.helpers import pg
from tests.helpers.chain import INDEXER, indexer_env, running_indexer, wait_exit
from tests.helpers.chainstate import checkpoint, ends_equal_to_the_chain_and_a_fresh_index
from tests.helpers.livechain import Activity, LiveChain, live_chain
from tests.helpers.ops import json_lines
from tests.helpers.polling import wait_until

SHARDS = 3


@pytest.fixture
def history() -> Iterator[LiveChain]:
    """Some 3,000 events spread over about 1,300 blocks: rounds of activity between runs
    of empty blocks, so that every shard's stripes hold events."""
    config = WorkloadConfig(
        seed=61, masters=3, artists=3, txs_per_block=2, max_events_per_tx=30, synthetic_holders=40
    )
    with live_chain(config, 600) as live:
        for _ in range(8):
            live.mine(150)
            live.workload.round(300)
        yield live


def _start_shards(
    stack: ExitStack, database_url: str, live: LiveChain, tmp_path: Path, to_block: int
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """SHARDS shard processes over [factory block, to_block]; the last as a Job's pod."""
    started = []
    for index in range(SHARDS):
        log = tmp_path / f"shard-{index}.log"
        env = indexer_env(database_url, live.chain)
        part = ["--shard", f"{index}/{SHARDS}"]
        if index == SHARDS - 1:
            env["JOB_COMPLETION_INDEX"] = str(index)
            part = ["--shards", str(SHARDS)]
        args = ["backfill", "--from-block", str(live.chain.factory_block)]
        args += ["--to-block", str(to_block), *part]
        started.append((stack.enter_context(running_indexer(args, env, log_path=str(log))), log))
    return started


def _finished(shards: list[tuple[subprocess.Popen[bytes], Path]]) -> list[dict[str, Any]]:
    """Wait for every shard to exit 0; each one's `shard` log line."""
    lines = []
    for process, log in shards:
        assert wait_exit(process, 120, log=log) == 0, log.read_text()[-3000:]
        (line,) = [r for r in json_lines(log.read_text()) if r.get("event") == "shard"]
        lines.append(line)
    return lines


def test_shards_beside_a_following_daemon_through_reorgs_end_equal_to_the_chain(
    history: LiveChain,
    database_url: str,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    to_block = history.head()
    daemon_env = indexer_env(database_url, history.chain, AUDIFI_POLL_INTERVAL="0.05")
    with ExitStack() as stack:
        stack.enter_context(
            running_indexer(["run"], daemon_env, log_path=str(tmp_path / "daemon.log"))
        )
        with Activity(history, every=0.3, events=30, reorg_every=3, seed=5) as activity:
            lines = _finished(_start_shards(stack, database_url, history, tmp_path, to_block))
            wait_until(lambda: activity.rounds >= 6 and activity.reorgs, timeout=60, what="a reorg")
        total = to_block - history.chain.factory_block + 1
        assert sum(line["blocks"] for line in lines) == total
        assert {line["shard"] for line in lines} == {f"{i}/{SHARDS}" for i in range(SHARDS)}
        ends_equal_to_the_chain_and_a_fresh_index(database_url, history, pg_databases, template_db)
    assert '"fatal"' not in (tmp_path / "daemon.log").read_text()


def test_a_shard_run_again_does_nothing_and_a_later_daemon_skips_what_shards_committed(
    history: LiveChain,
    database_url: str,
    pg_databases: pg.Databases,
    template_db: str,
    tmp_path: Path,
) -> None:
    to_block = history.head()
    with ExitStack() as stack:
        _finished(_start_shards(stack, database_url, history, tmp_path, to_block))
    with ExitStack() as stack:  # a Job retrying index 1: its stripes are all committed
        (again,) = _finished(_start_shards(stack, database_url, history, tmp_path, to_block)[1:2])
    assert again["left_blocks"] == 0 and again["blocks"] > 0
    # Shard 0 moved the checkpoint through its first stripe (it starts the index); the
    # rest is committed but not below the checkpoint.
    at = asyncio.run(checkpoint(database_url))
    assert at is not None and history.chain.factory_block < at[0] < to_block
    # Far enough ahead that the daemon starts with a catch-up below the reorg window.
    history.mine(1_300)
    log = tmp_path / "daemon.log"
    env = indexer_env(database_url, history.chain, AUDIFI_POLL_INTERVAL="0.05")
    with running_indexer(["run"], env, log_path=str(log)):
        ends_equal_to_the_chain_and_a_fresh_index(database_url, history, pg_databases, template_db)
    skipped = [r for r in json_lines(log.read_text()) if r.get("event") == "skipped_committed"]
    assert [(r["from_block"], r["to_block"]) for r in skipped] == [(at[0] + 1, to_block)]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--shard", "3/3"], {}, "--shard 3/3: the index must be 0 to 2"),
        (["--shard", "1-3"], {}, "expected I/N"),
        (["--shards", "3"], {}, "JOB_COMPLETION_INDEX is not set"),
        (["--shards", "3"], {"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX is 'x'"),
        (["--shards", "3"], {"JOB_COMPLETION_INDEX": "3"}, "the index must be 0 to 2"),
        (["--shard", "0/3", "--shards", "3"], {}, "not both"),
    ],
)
def test_a_wrong_shard_is_a_usage_error(args: list[str], env: dict[str, str], message: str) -> None:
    done = subprocess.run(
        [*INDEXER, "backfill", "--from-block", "0", "--to-block", "10", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


@pytest.mark.parametrize(("start", "end", "count"), [(0, 0, 1), (5, 9, 3), (10, 1_000, 4)])
def test_the_shards_stripes_hold_every_block_once(start: int, end: int, count: int) -> None:
    blocks = [
        b
        for index in range(count)
        for low, high in stripes(start, end, Shard(index, count))
        for b in range(low, high + 1)
    ]
    assert sorted(blocks) == list(range(start, end + 1))
    assert len(stripes(10, 1_000, Shard(0, 4))) == STRIPES_PER_SHARD


def test_committed_blocks_are_left_out_of_a_shard() -> None:
    assert uncommitted([(0, 9), (20, 29)], [(3, 4), (8, 22)]) == [(0, 2), (5, 7), (23, 29)]
    assert uncommitted([(0, 9)], []) == [(0, 9)]
    assert uncommitted([(5, 9)], [(0, 100)]) == []
    assert Shard.parse(" 2/5 ") == Shard(2, 5)
    with pytest.raises(ConfigError):
        Shard(0, 0)
