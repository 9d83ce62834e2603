"""One benchmark invocation: every size, every run, every step, in the order of the issue.

Per run: anvil loads the cached chain (a fresh copy, since live follow adds blocks), the
ceilings are measured, the backfill runs into a fresh database copied from a migrated
template, the oracle checks it, and the daemon follows new blocks on that same database.
Databases are dropped and processes stopped on the way out, whatever happened.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.devchain.anvil import Anvil
from tests.bench import ceilings, chaincache, endtoend, hosted, latency, profiling, report
from tests.bench.chaincache import CACHE_DIR, CachedChain, ChainSpec
from tests.bench.report import Run
from tests.bench.shapes import SHAPES
from tests.helpers import pg

BENCH_DATABASE_URL_ENV = "AUDIFI_BENCH_DATABASE_URL"
STEPS = ("ceilings", "backfill", "hosted", "follow")
LOG_DIR = CACHE_DIR / "logs"
# Set by the signal handler: a step that fails after Ctrl-C (say, because the terminal's
# SIGINT also ended anvil) is an interrupt, not a result.
INTERRUPTED = threading.Event()


@dataclass(frozen=True, slots=True)
class Options:
    sizes: dict[str, int]  # label -> events
    runs: dict[str, int]  # label -> runs
    seed: int
    shapes: tuple[str, ...]  # names in shapes.SHAPES
    follow_blocks: int
    report_path: Path
    profile: bool
    skip: frozenset[str]
    indexer_env: dict[str, str]  # extra AUDIFI_* settings for the indexer processes


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextmanager
def step(run: Run, name: str) -> Iterator[None]:
    """Times a step into run["steps_s"]; a failure is recorded as run[name]["error"] and
    the benchmark goes on (interrupts still propagate)."""
    began = time.perf_counter()
    try:
        yield
    except Exception as e:
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt from e
        run[name] = {"error": f"{type(e).__name__}: {e}"[-3000:]}
        say(f"  {name} FAILED: {run[name]['error'][-800:]}")
    finally:
        run["steps_s"][name] = round(time.perf_counter() - began, 2)


def ok(run: Run, name: str) -> bool:
    return name in run and "error" not in run[name]


def find_server() -> pg.Server:
    """$AUDIFI_BENCH_DATABASE_URL (a superuser DSN), else what the tests use."""
    if url := os.environ.get(BENCH_DATABASE_URL_ENV):
        return pg.Server(url)
    return pg.find_server()


@contextmanager
def migrated_template() -> Iterator[tuple[pg.Databases, str]]:
    """The server's databases and a migrated template to copy for each run; the template,
    and the server when this started it, are gone on the way out."""
    server = find_server()
    databases = pg.Databases(server.admin_dsn)
    try:
        template = databases.create_migrated()
        try:
            yield databases, template
        finally:
            databases.drop(template)
    finally:
        databases.close()
        if server.stop is not None:
            server.stop()


def main(options: Options) -> dict[str, Any]:
    """Runs everything, writes the report, prints the table; returns the report."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "machine": _machine()}
    result["options"] = {**asdict(options), "report_path": str(options.report_path)}
    result["sizes"] = {}
    with migrated_template() as (databases, template):
        for shape in options.shapes:
            for label, events in options.sizes.items():
                spec = SHAPES[shape].chain(events, options.seed)
                entry = bench_size(options, databases, template, label, spec)
                result["sizes"][f"{shape} {label}"] = entry | {"shape": shape}
                report.write(options.report_path, result)
    result["machine"]["load_after"] = os.getloadavg()
    report.write(options.report_path, result)
    print()
    if options.indexer_env:
        print(f"indexer settings: {options.indexer_env}")
    print(report.render_table(result["sizes"]))
    print(f"\nreport: {options.report_path}")
    return result


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_before": os.getloadavg(),
        "git": _git(),
    }


def _git() -> dict[str, Any]:
    """The commit measured, and the files that differed from it (the tree is shared)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=CACHE_DIR.parent, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "indexer", "sql")
    return {"commit": git("rev-parse", "HEAD"), "changed": changed.splitlines()}


def bench_size(
    options: Options, databases: pg.Databases, template: str, label: str, spec: ChainSpec
) -> dict[str, Any]:
    chain, generated = chaincache.ensure(spec, log=say)
    say(
        f"{label}: chain of {chain.events:,} events, {chain.blocks} blocks "
        f"({'generated now' if generated else 'from cache'}; generation took "
        f"{chain.generation_s:.1f} s)"
    )
    entry: dict[str, Any] = {"chain": {**asdict(chain), "generated_now": generated}, "runs": []}
    for i in range(options.runs[label]):
        say(f"{label}: run {i + 1} of {options.runs[label]}")
        entry["runs"].append(one_run(options, databases, template, chain, tag=f"{label}-{i + 1}"))
    entry["median"] = report.medians(entry["runs"])
    if "hosted" not in options.skip:
        entry["hosted"] = hosted_run(options, databases, template, chain, tag=f"{label}-hosted")
    if options.profile:
        entry["profile"] = profile_run(options, databases, template, chain, tag=f"{label}-profile")
    return entry


def one_run(
    options: Options, databases: pg.Databases, template: str, chain: CachedChain, *, tag: str
) -> Run:
    run: Run = {"steps_s": {}}
    began = time.perf_counter()
    node = chaincache.start(chain)
    run["steps_s"]["anvil_load"] = round(time.perf_counter() - began, 2)
    with node:
        if "ceilings" not in options.skip:
            _ceilings(run, node.url, databases, template, chain)
        if "backfill" in options.skip:
            return run
        name = databases.create(template=template)
        try:
            _backfill(options, run, databases.url(name), node, chain, tag=tag)
            if ok(run, "backfill") and "follow" not in options.skip:
                _follow(options, run, databases.url(name), node, chain, tag=tag)
        finally:
            databases.drop(name)
    return run


def _ceilings(
    run: Run, url: str, databases: pg.Databases, template: str, chain: CachedChain
) -> None:
    with step(run, "getlogs"):
        run["getlogs"] = _rate(_fetch_ceiling(url, chain))
        say(f"  eth_getLogs + parse: {run['getlogs']['per_s']:,.0f} events/s")
    with step(run, "copy"):
        run["copy"] = _rate(_copy_ceiling(databases, template, chain.events, indexed=True))
        say(f"  COPY: {run['copy']['per_s']:,.0f} rows/s")
    with step(run, "copy_unindexed"):
        unindexed = _copy_ceiling(databases, template, chain.events, indexed=False)
        run["copy_unindexed"] = _rate(unindexed)
        say(f"  COPY without indexes (for comparison): {unindexed.per_s:,.0f} rows/s")


def _backfill(
    options: Options, run: Run, url: str, node: Anvil, chain: CachedChain, *, tag: str
) -> None:
    rpc_url = node.url
    with step(run, "backfill"):
        log_path = LOG_DIR / f"{tag}-backfill.log"
        env = endtoend.indexer_env(url, rpc_url, chain, **options.indexer_env)
        done = endtoend.run_backfill(env, chain, url, log_path, node_pid=node.pid)
        cpu = done.cpu_us_per_event()
        run["backfill"] = {
            **asdict(done),
            "per_s": round(done.per_s),
            "blocks_per_s": round(done.blocks / done.wall_s, 1) if done.wall_s else None,
            "steady_rss_mb": done.steady_rss_mb,
            "cpu_us_per_event": cpu,
            "http_requests_per_1000_events": done.per_1000_events(done.http_requests),
            "rpc_calls_per_1000_events": done.per_1000_events(done.rpc_calls),
        }
        if done.reported_s:
            run["backfill"]["reported_per_s"] = round(done.events / done.reported_s)
        say(
            f"  backfill: {done.events:,} events in {done.wall_s:.1f} s = {done.per_s:,.0f}/s, "
            f"peak RSS {done.peak_rss_mb:.0f} MB (second half: {done.steady_rss_mb} MB); "
            f"CPU per event {cpu['total']:.0f} µs (indexer {cpu['indexer']:.0f}, "
            f"PostgreSQL {cpu['postgres']:.0f}, node {cpu['node']:.0f}); "
            f"{done.http_requests} requests"
        )
    if not ok(run, "backfill"):
        return
    with step(run, "oracle"):
        problems = endtoend.oracle_mismatches(url, rpc_url, chain)
        run["oracle"] = {"mismatches": len(problems), "examples": problems[:5]}
        say(f"  oracle: {len(problems)} mismatches")
    with step(run, "audit"):
        audited = endtoend.run_audit(env, chain, LOG_DIR / f"{tag}-audit.log")
        run["audit"] = {
            **asdict(audited),
            "share_of_backfill": round(audited.wall_s / done.wall_s, 3),
            "calls_per_1000_blocks": round(1000 * audited.rpc_calls / max(1, audited.blocks)),
        }
        say(
            f"  audit: {audited.blocks:,} blocks in {audited.wall_s:.1f} s "
            f"({run['audit']['share_of_backfill']:.0%} of the backfill's time), "
            f"{run['audit']['calls_per_1000_blocks']} calls per 1,000 blocks, "
            f"{audited.discrepancies} discrepancies"
        )


def _follow(
    options: Options, run: Run, url: str, node: Anvil, chain: CachedChain, *, tag: str
) -> None:
    with step(run, "follow"):
        follow = latency.measure_follow(
            url,
            node,
            chain,
            blocks=options.follow_blocks,
            seed=options.seed + 1,
            log_path=LOG_DIR / f"{tag}-follow.log",
            extra_env=options.indexer_env,
        )
        after = endtoend.oracle_mismatches(url, node.url, chain)
        run["follow"] = {
            **asdict(follow),
            "p50_ms": round(follow.p50_ms, 1),
            "p95_ms": round(follow.p95_ms, 1),
            "mismatches": len(after),
            "examples": after[:5],
        }
        say(
            f"  follow: p50 {follow.p50_ms:.0f} ms, p95 {follow.p95_ms:.0f} ms, "
            f"peak RSS {follow.peak_rss_mb:.0f} MB, {len(after)} mismatches after"
        )


def _fetch_ceiling(url: str, chain: CachedChain) -> ceilings.Rate:
    span = ceilings.span_for(events=chain.events, blocks=chain.blocks)
    return asyncio.run(
        ceilings.fetch_rate(
            url,
            [chain.factory, *chain.children],
            from_block=chain.factory_block,
            to_block=chain.head,
            span=span,
        )
    )


def _copy_ceiling(
    databases: pg.Databases, template: str, rows: int, *, indexed: bool
) -> ceilings.Rate:
    name = databases.create(template=template)
    try:
        return asyncio.run(ceilings.copy_rate(databases.url(name), rows=rows, indexed=indexed))
    finally:
        databases.drop(name)


def _rate(rate: ceilings.Rate) -> dict[str, Any]:
    return {
        "events": rate.items,
        "seconds": round(rate.seconds, 3),
        "per_s": round(rate.per_s),
        "note": rate.note,
    }


def hosted_run(
    options: Options, databases: pg.Databases, template: str, chain: CachedChain, *, tag: str
) -> dict[str, Any]:
    """One backfill through the hosted-provider profile (tests/bench/hosted.py)."""
    result: Run = {"steps_s": {}}
    with chaincache.start(chain) as node, step(result, "hosted"):
        log_path = LOG_DIR / f"{tag}-backfill.log"
        measured = hosted.measure(
            databases, template, node.url, node.pid, chain, log_path, options.indexer_env
        )
        result["hosted"] = measured
        say(
            f"  hosted profile: {measured['seconds']:.1f} s, {measured['ratio_to_floor']}x the "
            f"{measured['floor_s']:.1f} s its limits allow; {measured['requests']} requests, "
            f"{measured['calls']} calls, {measured['rate_limited_requests']} answered 429 "
            f"({measured['calls_refused_after_ramp']} calls refused after {hosted.RAMP_S} s); "
            f"oracle mismatches {measured['oracle_mismatches']}"
        )
    return dict(result.get("hosted", {})) | {"steps_s": result["steps_s"]}


def profile_run(
    options: Options, databases: pg.Databases, template: str, chain: CachedChain, *, tag: str
) -> dict[str, Any]:
    """One more backfill, under py-spy and the pg_stat_activity sampler; writes
    .bench/<tag>.txt (both summaries) and .bench/<tag>.raw (py-spy's stacks)."""
    raw_path, text_path = CACHE_DIR / f"{tag}.raw", CACHE_DIR / f"{tag}.txt"
    log_path = LOG_DIR / f"{tag}-backfill.log"
    spy_log = LOG_DIR / f"{tag}-py-spy.log"
    name = databases.create(template=template)
    try:
        url = databases.url(name)
        with chaincache.start(chain) as node, profiling.DbSampler(url) as sampler:
            env = endtoend.indexer_env(url, node.url, chain, **options.indexer_env)
            done = endtoend.run_backfill(
                env,
                chain,
                url,
                log_path,
                node_pid=node.pid,
                attach=lambda child: profiling.attach(child, raw_path, spy_log),
            )
    finally:
        databases.drop(name)
    profile = profiling.summarise(raw_path, seconds=done.wall_s)
    db = sampler.result()
    text_path.write_text(profiling.render(profile) + "\n" + profiling.render_db(db))
    say(f"profile ({done.per_s:,.0f} events/s under py-spy): {text_path}")
    print(text_path.read_text(), flush=True)
    return {
        "per_s": round(done.per_s),
        "text": str(text_path),
        "raw": str(raw_path),
        "busy_share": round(profile.busy_share, 3),
        "startup_samples": profile.startup,
        "samples": profile.samples,
        "self_top": profile.self_top,
        "total_top": profile.total_top,
        "lines_top": profile.lines_top,
        "db": asdict(db),
    }
