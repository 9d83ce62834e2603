"""Child processes the benchmark starts: stopped by PID, reaped with their peak RSS.

Children are reaped with os.wait4, which hands back the child's own rusage: ru_maxrss is
the process's peak resident set (VmHWM), exact and unaffected by other children.
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
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.ended = time.perf_counter()
                self.peak_rss_kb = usage.ru_maxrss  # KiB on Linux
                self.popen.returncode = os.waitstatus_to_exitcode(status)
        return self.popen.returncode

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
            if self.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                if self.wait(grace) is None:
                    self.popen.kill()
                    self.wait(15.0)
        finally:
            if self._log is not None:
                self._log.close()
        return self.returncode
