"""structlog setup: JSON lines off a terminal, colours on one, secrets never printed."""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

_CREDENTIALS = re.compile(r"(://[^:/@\s]+):([^@\s]+)@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]+", re.IGNORECASE)
# Keys whose values are never printed; "token" is absent on purpose (token_address, token_id).
_SECRET_KEYS = ("password", "secret", "api_key", "authorization", "dsn", "database_url")


def redact(text: str) -> str:
    """Replace the password of any URL in `text` (user:pw@ or ?password=) with ***."""
    return _QUERY_PASSWORD.sub(r"\1***", _CREDENTIALS.sub(r"\1:***@", text))


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if any(s in key.lower() for s in _SECRET_KEYS) and key != "event":
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(value)
        elif isinstance(value, list | tuple):
            event[key] = [redact(v) if isinstance(v, str) else v for v in value]
    return event


class Quieter(logging.Filter):
    """For other libraries' records (asyncpg's pool retrying its connections, asyncio): no
    traceback unless at debug, and a message repeated within REPEAT_SECONDS is counted
    into the next one that is printed, not printed itself."""

    REPEAT_SECONDS = 30.0
    MAX_KEPT = 1_000

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__()
        self.tracebacks = tracebacks
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.tracebacks:
            if record.exc_info and record.exc_info[1] is not None:  # keep what it was
                record.msg = f"{record.msg}: {record.exc_info[1]!r}"
            record.exc_info = record.exc_text = record.stack_info = None
        if len(self._seen) > self.MAX_KEPT:  # messages that embed ids never repeat
            self._seen.clear()
        key = (record.name, str(record.msg))
        now = time.monotonic()
        printed_at, repeats = self._seen.get(key, (-math.inf, 0))
        if now - printed_at < self.REPEAT_SECONDS:
            self._seen[key] = (printed_at, repeats + 1)
            return False
        if repeats:
            record.msg = f"{record.msg} (and {repeats} more like it since the last line)"
        self._seen[key] = (now, 0)
        return True


def configure(*, level: str = "info", fmt: str = "auto") -> None:
    """Configure once per process; `fmt` is auto, json or console.

    Records of other libraries' standard `logging` (asyncpg's pool, asyncio, warnings)
    go through the same processors, so that off a terminal every line is JSON."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    threshold = logging.getLevelNamesMapping()[level.upper()]
    common: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *common, _redact_event, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redact_event,
                renderer,
            ],
        )
    )
    handler.addFilter(Quieter(tracebacks=threshold <= logging.DEBUG))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
    logging.captureWarnings(True)
