"""``rate_limits.updated``: per-call request and token budgets, refilled continuously.

Each budget is a token bucket holding ``limit`` units that refills at ``limit`` per minute, so
``reset_seconds`` is how long until it is full again (OpenAI's meaning). A response spends one
request and its ``usage.total_tokens``. The numbers are plausible, not any real quota.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

REQUESTS_PER_MINUTE = 5_000
TOKENS_PER_MINUTE = 400_000


class Bucket:
    def __init__(self, name: str, limit: int, clock: Callable[[], float]) -> None:
        self.name = name
        self.limit = limit
        self._clock = clock
        self._level = float(limit)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.limit, self._level + (now - self._at) * self.limit / 60.0)
        self._at = now

    def spend(self, amount: float) -> None:
        self._refill()
        self._level = max(0.0, self._level - amount)

    def state(self) -> dict[str, Any]:
        self._refill()
        return {
            "name": self.name,
            "limit": self.limit,
            "remaining": math.floor(self._level),
            "reset_seconds": round((self.limit - self._level) * 60.0 / self.limit, 3),
        }


class RateLimits:
    """The budgets of one call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = Bucket("requests", REQUESTS_PER_MINUTE, clock)
        self.tokens = Bucket("tokens", TOKENS_PER_MINUTE, clock)

    def spend(self, total_tokens: int) -> list[dict[str, Any]]:
        """Charge one finished response; returns the ``rate_limits`` list to send."""
        self.requests.spend(1)
        self.tokens.spend(total_tokens)
        return [self.requests.state(), self.tokens.state()]
