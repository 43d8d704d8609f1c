"""Per-caller rate limits: an in-memory token bucket per key; the client address behind a trusted proxy;
the back-off schedule of failed logins (kept in the database: gateway/logins.py).

Per replica: with N gateway replicas (or worker processes) a caller gets up to N times the rate.
That is the documented trade for no shared store on the hot path; set the rate per replica.
"""
from __future__ import annotations

import math
import time
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network


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


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[IPv4Network | IPv6Network]) -> str:
    """The caller's address: the peer's, unless the peer is a trusted proxy, then the right-most address in
    X-Forwarded-For that is not itself a trusted proxy (what the Ingress saw; anything left of it the
    caller could have written)."""
    address = peer or "unknown"
    if not forwarded_for or not _within(address, trusted):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            ip_address(hop)
        except ValueError:
            return address  # a malformed header names nobody: keep the proxy's own address
        if not _within(hop, trusted):
            return hop
    return address


def trusted_networks(entries: list[str]) -> list[IPv4Network | IPv6Network]:
    """The configured trusted proxies as networks (an address is a /32 or /128)."""
    return [ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _within(address: str, networks: list[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def backoff_s(failures: int, *, after: int, base_s: float, max_s: float) -> float:
    """How long one account must wait at one address after `failures` failed logins: nothing for the first
    `after - 1`, then `base_s`, doubling with each further failure, at most `max_s`."""
    if failures < after:
        return 0.0
    return min(max_s, base_s * 2 ** min(failures - after, 40))
