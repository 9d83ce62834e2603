"""Child processes the benchmark starts: stopped by PID, with their peak RSS.

Peak RSS is the kernel's high-water mark of the child's own memory (VmHWM in
/proc/PID/status), read every few milliseconds while it runs: it only grows, so the last
reading before the exit is the peak. Not ru_maxrss: a child started by (v)fork + exec
inherits its parent's high-water mark, so it would report the benchmark's own size. CPU
time is the child's own (user + system, from wait4's rusage); `cpu_seconds` reads any
process's from /proc, and `postgres_cpu_seconds` the whole server's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

INDEXER = (sys.executable, "-m", "indexer")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_POLL_S = 0.01
_HWM_EVERY_S = 0.1  # a high-water mark needs no more than a recent reading
_RSS_SERIES_EVERY_S = 1.0


class Child:
    """One started process; `stop()` (or leaving the `with` block) ends exactly it."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self._log: IO[bytes] | None = log_path.open("wb") if log_path else None
        out = self._log if self._log is not None else subprocess.DEVNULL
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            self.argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        self.ended: float | None = None
        self.cpu_s: float | None = None  # user + system, once it exited
        self.peak_rss_kb: int | None = None
        # (seconds since start, current RSS in MB) about once a second: is memory flat?
        self.rss_series: list[tuple[float, float]] = []
        self._hwm_read_at = 0.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @property
    def wall_s(self) -> float:
        """Seconds from spawn to exit (to now while it runs)."""
        return (self.ended or time.perf_counter()) - self.started

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def poll(self) -> int | None:
        """The exit code once it exited (reaping it), else None."""
        if self.popen.returncode is None:
            self._sample_peak_rss()
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.ended = time.perf_counter()
                self.cpu_s = usage.ru_utime + usage.ru_stime
                self.popen.returncode = os.waitstatus_to_exitcode(status)
        return self.popen.returncode

    def _sample_peak_rss(self) -> None:
        now = time.perf_counter()
        if now - self._hwm_read_at < _HWM_EVERY_S:
            return
        self._hwm_read_at = now
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:  # gone
            return
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmHWM" not in fields:  # a zombie has no memory lines
            return
        self.peak_rss_kb = max(self.peak_rss_kb or 0, int(fields["VmHWM"].split()[0]))
        since = now - self.started
        if not self.rss_series or since - self.rss_series[-1][0] >= _RSS_SERIES_EVERY_S:
            rss_mb = int(fields["VmRSS"].split()[0]) / 1024
            self.rss_series.append((round(since, 1), round(rss_mb, 1)))

    def wait(self, timeout: float | None = None) -> int | None:
        """Waits for the exit; None if it still runs after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(_POLL_S)
        return self.returncode

    def stop(self, *, grace: float = 15.0) -> int | None:
        """SIGTERM, SIGKILL after `grace` seconds; idempotent, reaps the process."""
        try:
            self._hwm_read_at = 0.0
            if self.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                if self.wait(grace) is None:
                    self.popen.kill()
                    self.wait(15.0)
        finally:
            if self._log is not None:
                self._log.close()
        return self.returncode


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """The process's user + system CPU so far (with `reaped_children`, plus that of the
    children it has waited for); 0.0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, from field 3 (state)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICKS_PER_S


def postgres_cpu_seconds() -> float:
    """CPU of every `postgres` process on the machine, live or exited (a backend that
    exits is counted in the postmaster's reaped children). The benchmark's server is the
    only one here; where there are several, this is their sum."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        total += cpu_seconds(int(entry.name), reaped_children=True)
    return total
