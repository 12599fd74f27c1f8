"""A per-key token bucket: ``rate`` events per minute with bursts up to ``rate``.

In-process: with several worker processes each enforces its own share. Good enough to
stop a runaway client; a shared limiter would live in the metadata store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from instastore.errors import RateLimited

MAX_KEYS = 100_000  # buckets kept before the idle ones are dropped


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: int, what: str = "requests") -> None:
        """Spend one token, or raise ``RateLimited`` saying when one will be there."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.refill_per_s)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.refill_per_s)
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"too many {what}: at most {int(self.capacity)} per minute", retry_after=wait)
        if len(self._buckets) >= MAX_KEYS:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        self._buckets[key] = (tokens - 1, now)
