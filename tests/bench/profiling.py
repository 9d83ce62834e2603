"""`--profile`: one extra backfill with py-spy attached, and where its time went.

Beside py-spy, a sampler reads pg_stat_activity every 10 ms: which of the indexer's
statements is running and what it waits on, the database's side of the same run.

py-spy samples the indexer process (by PID, 100 Hz, CPU only: samples where the thread
waits on a socket are left out) into collapsed stacks (`.raw`, loadable in speedscope or
flamegraph.pl); the summary lists the functions with the most samples on top of the stack
(self) and anywhere in it (total). The profiled run is not counted in the medians.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.bench.procs import Child

RATE_HZ = 100
_LINE = re.compile(r":\d+\)$")
_ATTACH_TRIES = 20
# Frames on (nearly) every stack, the interpreter's and the event loop's entry points, are
# left out of the "total" list.
_SPINE = 0.9
_IMPORT = "_find_and_load ("


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int  # all of them, start-up included
    startup: int  # samples inside an import (the CLI imports its command's modules lazily)
    seconds: float
    self_top: list[tuple[str, int]]  # over the samples after start-up
    total_top: list[tuple[str, int]]
    lines_top: list[tuple[str, int]]  # self samples per source line
    raw_path: Path

    @property
    def busy_share(self) -> float:
        """Share of wall time the main thread was on a CPU (not waiting on I/O)."""
        return self.samples / (self.seconds * RATE_HZ) if self.seconds > 0 else 0.0


def py_spy() -> Path:
    """py-spy beside this interpreter, pip-installed into it if missing."""
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.exists():
        print("installing py-spy into the venv for --profile")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return binary


def attach(target: Child, raw_path: Path, log_path: Path) -> Child:
    """py-spy recording `target` until it exits; retried while the interpreter starts up."""
    argv = [str(py_spy()), "record", "--pid", str(target.pid), "--rate", str(RATE_HZ)]
    argv += ["--format", "raw", "--output", str(raw_path)]
    for _ in range(_ATTACH_TRIES):
        time.sleep(0.1)
        spy = Child(argv, env={}, log_path=log_path)
        if spy.wait(1.0) is None or spy.returncode == 0:
            return spy
        if target.poll() is not None:
            break
    raise RuntimeError(f"py-spy could not attach to {target.pid}; see {log_path}")


def summarise(raw_path: Path, *, seconds: float, top: int = 10) -> Profile:
    """Self and total samples per function (lines of one function merged), after start-up."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    samples = startup = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw_frames = stack.split(";")
        frames = [_LINE.sub(")", f) for f in raw_frames]
        samples += count
        if any(f.startswith(_IMPORT) for f in frames):
            startup += count
            continue
        own[frames[-1]] += count
        lines[raw_frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    running = samples - startup
    return Profile(
        samples=samples,
        startup=startup,
        seconds=seconds,
        self_top=own.most_common(top),
        total_top=[(f, n) for f, n in total.most_common() if n < _SPINE * running][:top],
        lines_top=lines.most_common(top),
        raw_path=raw_path,
    )


def render(profile: Profile) -> str:
    running = profile.samples - profile.startup
    lines = [
        f"py-spy, {profile.samples} samples at {RATE_HZ} Hz over {profile.seconds:.1f} s wall "
        f"(on CPU {profile.busy_share:.0%} of it); raw stacks: {profile.raw_path}",
        f"start-up (imports): {profile.startup} samples = {profile.startup / RATE_HZ:.1f} s CPU;"
        f" shares below are of the other {running} samples",
        "",
        "top by self samples (the function itself was running):",
        *_rows(profile.self_top, running),
        "",
        "top by total samples (the function was on the stack; event-loop spine left out):",
        *_rows(profile.total_top, running),
        "",
        "top lines by self samples (time in C code counts for the line that called it):",
        *_rows(profile.lines_top, running),
    ]
    return "\n".join(lines) + "\n"


def _rows(items: list[tuple[str, int]], samples: int) -> list[str]:
    return [f"  {n / max(samples, 1):6.1%}  {n:7d}  {frame}" for frame, n in items]


@dataclass(frozen=True, slots=True)
class DbProfile:
    samples: int  # snapshots of pg_stat_activity taken
    busy: int  # snapshots in which an indexer session was running a statement
    statements: list[tuple[str, int]]  # the statement's first line -> snapshots
    waits: list[tuple[str, int]]  # wait_event_type:wait_event ("CPU" when none)


class DbSampler:
    """pg_stat_activity of the indexer's sessions every few ms, on a thread of its own:
    the database-side profile (which statement runs, and what it waits on)."""

    def __init__(self, admin_dsn: str, *, every_s: float = 0.01) -> None:
        self._dsn = admin_dsn
        self._every_s = every_s
        self._stop = threading.Event()
        self._statements: Counter[str] = Counter()
        self._waits: Counter[str] = Counter()
        self._samples = self._busy = 0
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)

    def __enter__(self) -> DbSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self, top: int = 10) -> DbProfile:
        return DbProfile(
            samples=self._samples,
            busy=self._busy,
            statements=self._statements.most_common(top),
            waits=self._waits.most_common(top),
        )

    def _run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(_ACTIVE, _APPLICATION)
                self._samples += 1
                self._busy += bool(rows)
                for row in rows:
                    self._statements[_first_line(row["query"])] += 1
                    wait = f"{row['wait_event_type']}:{row['wait_event']}"
                    self._waits[wait if row["wait_event_type"] else "CPU"] += 1
                await asyncio.sleep(self._every_s)
        finally:
            await conn.close()


_APPLICATION = "audifi-indexer"
_ACTIVE = """
select query, wait_event_type, wait_event
from pg_stat_activity
where application_name = $1 and state = 'active'
"""


def _first_line(query: str) -> str:
    """A statement's name: its first non-blank line, shortened."""
    line = next((x.strip() for x in query.splitlines() if x.strip()), "")
    return line[:90]


def render_db(profile: DbProfile) -> str:
    busy = profile.busy / max(profile.samples, 1)
    lines = [
        f"pg_stat_activity, {profile.samples} snapshots: an indexer statement was running in "
        f"{busy:.0%} of them",
        "statements (share of all snapshots):",
        *_rows(profile.statements, profile.samples),
        "what the running statements waited on (CPU = nothing):",
        *_rows(profile.waits, profile.samples),
    ]
    return "\n".join(lines) + "\n"
