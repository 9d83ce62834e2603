"""Recognise the eth_getLogs limit errors of real providers (pure).

Two kinds exist: messages that carry a usable range or block count, and
catch-alls that only say "too much". Both become a LimitHint; anything else
is not a limit error. Numbers may carry thousands separators ("10,000") or a
k suffix ("2K"); a result-count limit is never mistaken for a block ceiling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"(\d[\d,]*)(k?)\b"
_HEX_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_DEC_RANGE = re.compile(r"retry with the range (\d+)\s*-\s*(\d+)", re.IGNORECASE)
# Each states a block-count ceiling; the first that matches wins.
_CEILINGS = tuple(
    re.compile(pattern.format(n=_NUMBER), re.IGNORECASE)
    for pattern in (
        r"limited to a {n}",
        r"up to a {n} block range",
        r"max(?:imum)? block range\s*(?:is|of|=|:)?\s*{n}",
        r"at most {n} blocks",
        r"max(?:imum)? range (?:is |of )?{n}",
        r"range (?:is )?(?:greater|larger) than {n}",
        r"range \d+ exceeds limit of {n}",
        r"too wide \(max(?:imum)?:? {n}\)",
    )
)
_CATCH_ALLS = (
    "query returned more than",
    "block range too large",
    "block range is too large",
    "block range is too wide",
    "block range is larger than",
    "range too large",
    "response is too big",
    "response size",
    "exceeds max results",
    "exceeds limit",
    "exceed maximum block range",
    "limit exceeded",
    "too many results",
    "too many logs",
    "query timeout",
    "log response size exceeded",
    "exceeded max",
    # geth, when toBlock is past its head: asking for less is what can succeed.
    "extends beyond current head",
)
LIMIT_EXCEEDED_CODE = -32005
# A provider's request-rate limit, whatever the method: waiting helps, a smaller range not.
_RATE_LIMITS = (
    "rate limit",
    "rate exceeded",
    "request rate",
    "too many requests",
    "request count exceeded",
    "compute units per second",
    "throughput",
)


@dataclass(frozen=True, slots=True)
class LimitHint:
    """What a refusal tells us: a range end that should work and/or a hard block ceiling."""

    suggested_to: int | None
    ceiling: int | None


def _ceiling(message: str) -> int | None:
    for pattern in _CEILINGS:
        match = pattern.search(message)
        if match:
            value = int(match.group(1).replace(",", ""))
            return value * 1000 if match.group(2) else value
    return None


def _suggested_to(message: str, data: object) -> int | None:
    if isinstance(data, dict) and isinstance(data.get("to"), str):
        try:
            return int(data["to"], 16)
        except ValueError:
            pass
    match = _HEX_RANGE.search(message)
    if match:
        return int(match.group(2), 16)
    match = _DEC_RANGE.search(message)
    if match:
        return int(match.group(2))
    return None


def parse_limit_error(code: int | None, message: str, data: object = None) -> LimitHint | None:
    """A LimitHint when the node refused eth_getLogs for its size, else None."""
    lowered = message.lower()
    suggested = _suggested_to(message, data)
    ceiling = _ceiling(message)
    if suggested is not None or ceiling is not None:
        return LimitHint(suggested_to=suggested, ceiling=ceiling)
    if code == LIMIT_EXCEEDED_CODE or any(phrase in lowered for phrase in _CATCH_ALLS):
        return LimitHint(suggested_to=None, ceiling=None)
    return None


def is_rate_limit(message: str) -> bool:
    """Whether a JSON-RPC error says the provider limits the request rate."""
    lowered = message.lower()
    return any(phrase in lowered for phrase in _RATE_LIMITS)
