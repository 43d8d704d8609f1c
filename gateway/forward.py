"""The upstream client: one pooled aiohttp session, and how its failures become 502/503/504 problems.

aiohttp rather than httpx here: on this 2-core machine the hop through httpx cost ~1.7 ms at p50
and capped a hello-world upstream near 320 req/s (httpcore retries importing sniffio per request,
and its pool is slower); aiohttp's client added ~0.45 ms and kept ~3,250 req/s (issue 7's
measurements). The hop is on every request, so it decides latency. httpx stays in tests and tools.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from shared.settings import KEEP_ALIVE_S

# hop-by-hop and length headers are the transport's business, not the upstream's; authorization is
# replaced by the internal token; x-request-id is set by the gateway
DROP_REQUEST = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                          "proxy-authorization", "accept-encoding", "authorization", "x-request-id",
                          "x-forwarded-for"})
# what a caller may see of an upstream's headers (x-request-id is the gateway's own)
KEEP_RESPONSE = frozenset({"content-type", "location", "retry-after", "cache-control", "etag", "link",
                           "content-disposition", "last-modified"})


#: an idle pooled connection is dropped after this: well before the services' uvicorn closes it (KEEP_ALIVE_S),
#: so a request is never sent on a connection the server is closing (which fails with no answer: a 502)
CLIENT_KEEP_ALIVE_S = KEEP_ALIVE_S / 2


def make_client(timeout_s: float, connect_timeout_s: float = 2.0, trace_configs: list[Any] | None = None,
                keep_alive_s: float = CLIENT_KEEP_ALIVE_S) -> aiohttp.ClientSession:
    """One pooled client for every upstream (keep-alive, bounded connections, timeouts on every call);
    `trace_configs` (shared.telemetry) add a client span per call and send `traceparent` upstream."""
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, keepalive_timeout=keep_alive_s,
                                     ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s),
                                 auto_decompress=False, skip_auto_headers=("User-Agent",),
                                 trace_configs=trace_configs or None)


def stream_timeout(connect_timeout_s: float, silence_s: float) -> aiohttp.ClientTimeout:
    """For server-sent event streams: bounded connect and silence, no overall limit (streams stay open)."""
    return aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=silence_s)


def upstream_failure(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, problem kind, title, detail) for a failed upstream call."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | aiohttp.ServerTimeoutError):
        return 504, "upstream-timeout", "Upstream timed out", "the service did not answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientConnectionResetError):
        return 503, "upstream-unavailable", "Upstream unavailable", \
            f"the service is unavailable ({type(exc).__name__})"
    return 502, "bad-gateway", "Bad gateway", f"the service gave no valid answer ({type(exc).__name__})"
