"""Per-entity-group write limit (DESIGN.md §9): a token bucket kept in ``dl_groups``.

The bucket state (tokens, last refill time) lives in the group's row and is updated inside
the commit's database transaction, so the limit holds across threads and processes. A
batch or transaction takes one token per group it writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import exceptions

__all__ = ["GroupWriteLimit", "RetryAfter", "Throttle"]


@dataclass(frozen=True)
class GroupWriteLimit:
    """Limit commits per entity group, like legacy Datastore's ~1 write/s per group.

    Args:
        rate: Sustained commits per second per entity group.
        burst: Commits a group may take at once before the rate applies.
        on_exceed: ``"raise"`` fails the commit with the contention error (nothing is
            written); ``"delay"`` waits for a token.
        max_delay: With ``"delay"``, the longest a commit waits before failing with
            ``DeadlineExceeded`` (the call's deadline).

    Example:
        >>> GroupWriteLimit(rate=1.0, burst=1, on_exceed="raise")
        GroupWriteLimit(rate=1.0, burst=1, on_exceed='raise', max_delay=60.0)
    """

    rate: float = 1.0
    burst: int = 1
    on_exceed: str = "raise"
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"GroupWriteLimit rate must be > 0 commits/s, not {self.rate!r}")
        if not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"GroupWriteLimit burst must be an int >= 1, not {self.burst!r}")
        if self.on_exceed not in ("raise", "delay"):
            raise ValueError(
                f"GroupWriteLimit on_exceed must be 'raise' or 'delay', not {self.on_exceed!r}"
            )
        if not self.max_delay >= 0:
            raise ValueError(f"GroupWriteLimit max_delay must be >= 0, not {self.max_delay!r}")

    @classmethod
    def parse(cls, text: str) -> GroupWriteLimit:
        """Parse the environment form ``"rate[:burst[:raise|delay]]"``, e.g. ``"1:1:raise"``."""
        parts = text.split(":")
        try:
            rate = float(parts[0])
            burst = int(parts[1]) if len(parts) > 1 and parts[1] else 1
        except ValueError:
            raise ValueError(
                f"DATASTORE_LITE_WRITE_LIMIT must look like 'rate[:burst[:raise|delay]]', "
                f"not {text!r}"
            ) from None
        on_exceed = parts[2] if len(parts) > 2 else "raise"
        return cls(rate=rate, burst=burst, on_exceed=on_exceed)


class RetryAfter(Exception):
    """Internal: the commit must wait ``seconds`` for a token, then run again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class Throttle:
    """Applies a :class:`GroupWriteLimit` to group rows inside a commit."""

    def __init__(self, limit: GroupWriteLimit, sleep: Callable[[float], None]) -> None:
        self.limit = limit
        self.sleep = sleep
        self._waited = 0.0

    def take(
        self, tokens: float | None, tokens_at: float | None, now: float
    ) -> tuple[float, float]:
        """Take one token from a group's bucket; return the bucket's new state.

        Raises:
            Aborted: ``on_exceed="raise"`` and the bucket is empty.
            RetryAfter: ``on_exceed="delay"``: the caller rolls back, waits, and retries.
        """
        limit = self.limit
        if tokens is None or tokens_at is None:
            tokens, tokens_at = float(limit.burst), now
        tokens = min(float(limit.burst), tokens + max(0.0, now - tokens_at) * limit.rate)
        if tokens >= 1.0:
            return tokens - 1.0, now
        wait = (1.0 - tokens) / limit.rate
        if limit.on_exceed == "raise":
            raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
        raise RetryAfter(wait)
