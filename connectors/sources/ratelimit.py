"""Token buckets: a sustained rate with a burst, per key (the collector's per-write-key limit)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBuckets:
    """``rate`` tokens per second per key, up to ``burst`` saved; ``take`` spends them.

    Not thread-safe: the collector calls it from its one event loop.
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[bytes, list[float]] = {}  # key -> [tokens, last refill]

    def take(self, key: bytes, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``; 0.0 when allowed, else the seconds to wait
        before the same request would be (nothing is spent then)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if cost > tokens:
            self._buckets[key] = [tokens, now]
            if cost > self.burst:
                return math.inf  # never, at this burst: the request must be split
            return (cost - tokens) / self.rate
        self._buckets[key] = [tokens - cost, now]
        return 0.0
