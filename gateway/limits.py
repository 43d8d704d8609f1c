"""Per-caller rate limits: an in-memory token bucket per key.

Per replica: with N gateway replicas (or worker processes) a caller gets up to N times the rate.
That is the documented trade for no shared store on the hot path; set the rate per replica.
"""
from __future__ import annotations

import math
import time


class RateLimiter:
    """Token buckets: `rate` tokens per second, holding at most `burst`."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        """A rate of 0 means no limit."""
        return self.rate > 0

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token: 0 if allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > self.max_keys:
                self._evict(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        """Forget buckets that have refilled (they hold no information)."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


def retry_after(seconds: float) -> str:
    """A Retry-After header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
