"""How many blocks to ask eth_getLogs for next (pure).

Shrinks on refusal (to the provider's suggested range when it gives one),
keeps a ceiling the provider stated, shrinks when a batch holds more logs
than we want in one transaction, and grows back when ranges are sparse. The
first span is small because one block can hold thousands of logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.errors import RangeTooLarge

_GROWTH = 1.5  # after a provider stated a ceiling: approach it gently
_SPARSE_GROWTH = 2.0


@dataclass(slots=True)
class RangePlanner:
    span: int
    max_span: int
    target_logs: int
    ceiling: int | None = None

    def end_for(self, start: int, limit: int) -> int:
        """Last block of the next range starting at `start`, never past `limit`."""
        return min(limit, start + self.span - 1)

    def refused(self, error: RangeTooLarge, *, start: int, end: int) -> None:
        if error.ceiling is not None:
            self.ceiling = min(self.ceiling or error.ceiling, error.ceiling)
        tried = end - start + 1
        if error.suggested_to is not None and start <= error.suggested_to < end:
            self.span = error.suggested_to - start + 1
        else:
            self.span = max(1, tried // 2)
        if self.ceiling is not None:
            self.span = min(self.span, self.ceiling)

    def succeeded(self, *, blocks: int, logs: int) -> None:
        """Aim the next range at `target_logs`: shrink to the density just seen, or grow
        (doubling while sparse, so a small start reaches a sparse chain's span quickly)."""
        if logs > self.target_logs:
            self.span = max(1, blocks * self.target_logs // logs)
        elif blocks >= self.span and logs < self.target_logs // 4:
            factor = _GROWTH if self.ceiling else _SPARSE_GROWTH
            self.span = min(self._limit, int(self.span * factor) + 1)

    @property
    def _limit(self) -> int:
        return min(self.max_span, self.ceiling) if self.ceiling else self.max_span
