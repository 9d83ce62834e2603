"""How providers refuse eth_getLogs calls over their limits, and a limit to emulate them.

The catalogue collects the (code, message) pairs that real providers and node
clients send, so that the indexer's error classifier can be tested against all
of them. Messages that suggest a smaller range get one the emulated limit would
accept, as the providers' suggestions are meant to be.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

JsonObj = dict[str, Any]

# Fields a template may use: the suggested range (hex and decimal), the refused
# range's size, and the configured limits ("{max_range:,}" gives "10,000").
TEMPLATE_FIELDS: Final = frozenset(
    {"first", "last", "first_dec", "last_dec", "span", "max_range", "max_results"}
)


@dataclass(frozen=True, slots=True)
class LimitError:
    """How one provider answers an eth_getLogs call over its limit."""

    provider: str
    code: int
    template: str
    status: int = 200  # HTTP status of a single (non-batch) refused call
    data_range: bool = False  # error.data carries {"from": first, "to": last} too

    @property
    def fields(self) -> frozenset[str]:
        """The template fields this message needs."""
        names = {name for _, name, _, _ in string.Formatter().parse(self.template) if name}
        return frozenset(names)

    @property
    def suggests_range(self) -> bool:
        """Whether the error tells the client a range that would succeed."""
        return "first" in self.fields or "first_dec" in self.fields or self.data_range

    def render(
        self,
        suggestion: tuple[int, int],
        *,
        span: int,
        max_range: int | None,
        max_results: int | None,
    ) -> JsonObj:
        """The JSON-RPC error object for a refused call of `span` blocks."""
        first, last = suggestion
        message = self.template.format(
            first=hex(first),
            last=hex(last),
            first_dec=first,
            last_dec=last,
            span=span,
            max_range=max_range,
            max_results=max_results,
        )
        error: JsonObj = {"code": self.code, "message": message}
        if self.data_range:
            error["data"] = {"from": hex(first), "to": hex(last)}
        return error


_ALCHEMY_SIZE = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"
    " and no limit on the response size, or you can make eth_getLogs requests with up to a 10K"
    " block range and a limit of 10000 logs. this block range should work: [{first}, {last}]"
)

# Named after the provider or node where the message was seen, or after the message
# itself when it comes from several; codes of the catch-alls vary between deployments.
PROVIDER_LIMIT_ERRORS: Final[tuple[LimitError, ...]] = (
    # Messages that carry a range known to work.
    LimitError("alchemy", -32602, _ALCHEMY_SIZE),
    LimitError(
        "alchemy-free",
        -32600,
        "You can make eth_getLogs requests with up to a {max_range} block range."
        " Based on your parameters, this block range should work: [{first}, {last}]",
    ),
    LimitError(
        "infura",
        -32005,
        "query returned more than {max_results} results."
        " Try with this block range [{first}, {last}].",
        data_range=True,
    ),
    LimitError(
        "max-results-retry",
        -32005,
        "query exceeds max results {max_results}, retry with the range {first_dec}-{last_dec}",
    ),
    # Messages that state the limit only.
    LimitError("quicknode", -32614, "eth_getLogs is limited to a {max_range:,} range", 413),
    LimitError("quicknode-plain", -32614, "eth_getLogs is limited to a {max_range} range"),
    LimitError("infura-range", -32602, "range {span} exceeds limit of {max_range}"),
    LimitError("ankr", -32600, "block range is too wide"),
    LimitError("frontier", -32603, "block range is too wide (maximum {max_range})"),
    LimitError("chainstack", -32000, "maximum block range: {max_range}"),
    LimitError("blastapi", -32000, "please limit the query to at most {max_range} blocks"),
    LimitError("exceed-max-range", -32000, "exceed maximum block range: {max_range}"),
    LimitError(
        "scroll",
        -32000,
        "block range is larger than max block range, block range = {span},"
        " max block range = {max_range}",
    ),
    # Catch-alls: the client can only shrink the range and try again.
    LimitError("more-than-results", -32005, "query returned more than {max_results} results"),
    LimitError("block-range-too-large", -32000, "block range too large"),
    LimitError("response-too-big", -32008, "response is too big"),
    LimitError("response-150mb", -32000, "Response size is larger than 150MB limit"),
    LimitError("logs-exceed-limit", -32005, "logs matched by query exceeds limit of {max_results}"),
    LimitError("limit-exceeded", -32005, "limit exceeded"),
    LimitError("query-timeout", -32002, "query timeout exceeded"),
    LimitError("geth-head", -32602, "block range extends beyond current head block"),
)


def limit_error(provider: str) -> LimitError:
    """The catalogue entry of `provider` (KeyError if there is none)."""
    for entry in PROVIDER_LIMIT_ERRORS:
        if entry.provider == provider:
            return entry
    raise KeyError(provider)


@dataclass(frozen=True, slots=True)
class LogLimit:
    """A provider's eth_getLogs limit: a range size, a result count, or both.

    A single-block range is never refused for its result count: no smaller
    range exists, and a suggestion must be a range this limit accepts.
    """

    error: LimitError
    max_range: int | None = None
    max_results: int | None = None

    def __post_init__(self) -> None:
        unknown = self.error.fields - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"unknown template fields {sorted(unknown)}")
        for name in ("max_range", "max_results"):
            if name in self.error.fields and getattr(self, name) is None:
                raise ValueError(f"{self.error.provider!r} needs {name}")

    def refuses(self, first: int, last: int, n_logs: int) -> bool:
        """Whether a call for blocks first..last that matches `n_logs` logs is over the limit."""
        too_wide = self.max_range is not None and last - first + 1 > self.max_range
        too_many = self.max_results is not None and n_logs > self.max_results and last > first
        return too_wide or too_many

    def suggest(self, first: int, last: int, log_blocks: Iterable[int]) -> tuple[int, int]:
        """The widest range starting at `first` that this limit accepts."""
        end = last if self.max_range is None else min(last, first + self.max_range - 1)
        if self.max_results is None:
            return first, end
        per_block = Counter(b for b in log_blocks if first <= b <= end)
        total = 0
        for block in sorted(per_block):
            total += per_block[block]
            if total > self.max_results:
                return first, max(first, block - 1)
        return first, end

    def refusal(self, first: int, last: int, log_blocks: list[int]) -> JsonObj:
        """The error object for a refused call, with a suggestion the limit accepts."""
        return self.error.render(
            self.suggest(first, last, log_blocks),
            span=last - first + 1,
            max_range=self.max_range,
            max_results=self.max_results,
        )
