"""A circuit breaker per upstream: a service that is down or frozen gets a quick 503, not a 10 s wait per request.

Open when the service refuses the `/healthz` probe (probed every `probe_interval_s` by each gateway
process); or when the probe gets no answer within `probe_timeout_s` and no other call to the service
was answered meanwhile (a busy service that still answers is slow, not down: one slow probe on a
loaded machine must not darken it); or after `breaker_failures` calls in a row failed to connect or
timed out. While open, requests routed to it are answered at once with a 503 problem and
`Retry-After`, and the requests already waiting on it when it opened are cut short with the same 503
(so a frozen service's callers wait at most about one probe interval and timeout, ~1 s, never the
10 s request timeout); every other route keeps working. It closes at the first probe that answers.
The price: a service whose event loop stalls longer than the probe timeout, with no call answered
meanwhile, counts as down until its next answer.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

import aiohttp

log = logging.getLogger(__name__)


@dataclass
class Breaker:
    """Open/closed for one upstream."""

    name: str
    failures_to_open: int = 3
    retry_s: float = 1.0
    failures: int = 0
    opened_at: float | None = None
    cause: str = ""
    last_answer: float = 0.0  # time.monotonic() of its last answer, to a probe or a forwarded call
    waiting: set[asyncio.Task] = field(default_factory=set)  # requests in flight to this upstream
    cut: set[asyncio.Task] = field(default_factory=set)  # …of which trip() cancelled

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def retry_after(self) -> str:
        """Whole seconds until the next probe may close it (at least 1)."""
        return str(max(1, math.ceil(self.retry_s)))

    def trip(self, cause: str) -> None:
        if self.opened_at is None:
            self.opened_at = time.monotonic()
            log.warning("circuit to %s open: %s; cutting %d waiting requests short", self.name, cause,
                        len(self.waiting), extra={"upstream": self.name, "cause": cause})
            current = asyncio.current_task()  # a call whose own failure trips it is already answering
            for task in self.waiting - self.cut - {current}:  # they answer 503 now rather than at their timeout
                self.cut.add(task)
                task.cancel()
        self.cause = cause

    def was_cut(self, task: asyncio.Task) -> bool:
        """Whether `task`'s cancellation came from `trip` (then it is withdrawn: the request answers 503)."""
        if task not in self.cut:
            return False
        self.cut.discard(task)
        task.uncancel()
        return True

    async def absorb_cut(self, task: asyncio.Task) -> None:
        """The answer came in the same tick as the cut: take the pending cancellation here, keep the answer."""
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass
        self.was_cut(task)

    def failed(self, cause: str) -> None:
        """A forwarded call that could not connect or timed out."""
        self.failures += 1
        if self.failures >= self.failures_to_open:
            self.trip(f"{self.failures} calls in a row failed ({cause})")

    def succeeded(self) -> None:
        self.failures = 0
        self.last_answer = time.monotonic()
        if self.opened_at is not None:
            log.info("circuit to %s closed after %.1fs", self.name, time.monotonic() - self.opened_at,
                     extra={"upstream": self.name})
            self.opened_at = None
            self.cause = ""


@dataclass
class Breakers:
    """The breakers of every upstream (by base URL), and the probe loop that opens and closes them."""

    upstreams: dict[str, str]  # name → base URL
    failures_to_open: int = 3
    probe_interval_s: float = 0.4
    probe_timeout_s: float = 0.6
    by_url: dict[str, Breaker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, url in self.upstreams.items():  # the next probe may close it: retry after that
            self.by_url[url.rstrip("/")] = Breaker(name, self.failures_to_open, self.probe_interval_s)

    def of(self, url: str) -> Breaker | None:
        return self.by_url.get(url)

    def states(self) -> dict[str, str]:
        return {b.name: f"open: {b.cause}" if b.is_open else "closed" for b in self.by_url.values()}

    async def probe_once(self, client: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._probe(client, url, breaker) for url, breaker in self.by_url.items()))

    async def _probe(self, client: aiohttp.ClientSession, url: str, breaker: Breaker) -> None:
        sent_at = time.monotonic()
        try:
            async with client.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=self.probe_timeout_s)) as r:
                if r.status == 200:
                    breaker.succeeded()
                    return
                cause = f"/healthz answered {r.status}"
        except TimeoutError:
            if breaker.last_answer > sent_at:  # it answered another call while the probe waited: busy, not down
                log.info("%s's /healthz took over %.1fs but it answers calls", breaker.name, self.probe_timeout_s,
                         extra={"upstream": breaker.name})
                return
            cause = f"/healthz: no answer within {self.probe_timeout_s}s"
        except aiohttp.ClientError as exc:
            cause = f"/healthz: {type(exc).__name__}"
        breaker.trip(cause)

    async def run(self, client: aiohttp.ClientSession) -> None:
        """Probe every upstream every `probe_interval_s` until cancelled."""
        while True:
            await self.probe_once(client)
            await asyncio.sleep(self.probe_interval_s)
