"""structlog setup: JSON lines off a terminal, colours on one, secrets never printed."""

from __future__ import annotations

import logging
import re
import sys
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
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
    logging.captureWarnings(True)
