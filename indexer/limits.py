"""Recognise the eth_getLogs limit errors of real providers (pure).

Two kinds exist: messages that carry a usable range or block count, and
catch-alls that only say "too much". Both become a LimitHint; anything else
is not a limit error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEX_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_DEC_RANGE = re.compile(r"retry with the range (\d+)\s*-\s*(\d+)", re.IGNORECASE)
_CEILINGS = (
    re.compile(r"limited to a (\d+)", re.IGNORECASE),
    re.compile(r"up to a (\d+)(k?) block range", re.IGNORECASE),
    re.compile(r"maximum block range:?\s*(\d+)", re.IGNORECASE),
    re.compile(r"at most (\d+) blocks", re.IGNORECASE),
    re.compile(r"max(?:imum)? range (?:is |of )?(\d+)", re.IGNORECASE),
    re.compile(r"range (?:is )?(?:greater|larger) than (\d+)", re.IGNORECASE),
    re.compile(r"exceed(?:s|ed)? (?:the )?maximum block range:?\s*(\d+)", re.IGNORECASE),
)
_CATCH_ALLS = (
    "query returned more than",
    "block range too large",
    "block range is too large",
    "block range is too wide",
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
)
LIMIT_EXCEEDED_CODE = -32005


@dataclass(frozen=True, slots=True)
class LimitHint:
    """What a refusal tells us: a range end that should work and/or a hard block ceiling."""

    suggested_to: int | None
    ceiling: int | None


def _ceiling(message: str) -> int | None:
    for pattern in _CEILINGS:
        match = pattern.search(message)
        if match:
            value = int(match.group(1))
            if match.lastindex == 2 and match.group(2):
                value *= 1000
            return value
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
