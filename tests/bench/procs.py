"""Child processes the benchmark starts: stopped by PID, with their peak RSS.

Peak RSS is the kernel's high-water mark of the child's own memory (VmHWM in
/proc/PID/status), read every few milliseconds while it runs: it only grows, so the last
reading before the exit is the peak. Not ru_maxrss: a child started by (v)fork + exec
inherits its parent's high-water mark, so it would report the benchmark's own size.
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
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.ended = time.perf_counter()
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
