"""The error tree: everything the indexer raises is Retryable or Fatal.

Foreign exceptions are wrapped at module boundaries with a short "doing what"
context, so the drivers only need to know which of the two an error is.
"""


class IndexerError(Exception):
    """Base of every error the indexer raises on purpose."""


class Retryable(IndexerError):
    """Running the same step again may succeed (node or database hiccup)."""


class Fatal(IndexerError):
    """Retrying cannot help; an operator must act."""


class RpcUnavailable(Retryable):
    """The node did not answer usefully (timeout, reset, 429, 5xx, garbage)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited  # "too many requests": slow down, not just retry


class RpcError(Fatal):
    """The node answered with a JSON-RPC error that retrying will not fix."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RangeTooLarge(Retryable):
    """The node refused an eth_getLogs range; `suggested_to` is its hint, if it gave one."""

    def __init__(self, message: str, *, suggested_to: int | None, ceiling: int | None) -> None:
        super().__init__(message)
        self.suggested_to = suggested_to
        self.ceiling = ceiling


class InconsistentResponse(Retryable):
    """The node's answer contradicts itself (wrong block hash, behind toBlock, duplicates)."""


class NotReady(Retryable):
    """The node has not reached a block we need yet (lagging replica, reorg in progress)."""


class DatabaseUnavailable(Retryable):
    """PostgreSQL could not be reached or dropped the connection."""


class ReorgTooDeep(Fatal):
    """The chain forked below the reorg window: the stored state cannot be repaired alone."""

    def __init__(self, message: str, *, fork_below: int) -> None:
        super().__init__(message)
        self.fork_below = fork_below


class SchemaBehind(Fatal):
    """The database has pending migrations."""


class ConfigError(Fatal):
    """A setting is missing or invalid."""


class MissingHeaders(InconsistentResponse):
    """Rows are stored in blocks of the batch for which it holds no header: the caller
    fetches `numbers` and commits again (the node gave no logs there, so either those
    rows are from a lost branch or the node's answer left them out)."""

    def __init__(self, message: str, *, numbers: frozenset[int]) -> None:
        super().__init__(message)
        self.numbers = numbers


class IndexMoved(Retryable):
    """Another writer moved the checkpoint or the tracked contracts after this batch read
    them: the batch is rejected and the step runs again from what is now committed."""


class LeaseLost(IndexerError):
    """Another replica took the leader lease over: this one stops writing and stands by.
    Neither retried by the drivers nor fatal to the process."""


class LeaseHeld(Fatal):
    """An operation that needs every follower stopped found a live leader."""
