"""The webhook delivery loop: sends due deliveries, signed, and records each attempt.

A pass claims up to `webhook_batch` due rows in a short transaction by pushing their `next_attempt_at` past
the attempt's time (a lease: another replica, or a crash, leaves them to be retried after it; on PostgreSQL
FOR UPDATE SKIP LOCKED keeps replicas apart), sends them concurrently outside any transaction, then records
the outcomes in another. 2xx is delivered; anything else (3xx included: redirects are not followed, an
error, a timeout) is retried after the next back-off, and after the last the delivery is `failed`.
Every request goes through the SSRF guard's resolver, with a total timeout and a capped read of the answer.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass

import aiohttp
from sqlalchemy import select, update

from services.dispatch.config import DispatchSettings
from services.dispatch.webhook_models import WebhookDelivery, WebhookSubscription
from shared import ssrf
from shared.bus import stop_if_cancelled
from shared.db import utcnow
from shared.retention import every, prune_older
from shared.runtime import Runtime
from shared.webhooks import SecretBox, signed_headers

log = logging.getLogger(__name__)
MAX_LOG = 20  # attempts kept per delivery (the first ones and the latest)


@dataclass
class Outcome:
    delivery_id: str
    ok: bool
    status_code: int | None
    error: str
    took_ms: float
    at: dt.datetime


class Deliverer:
    """Sends a replica's due deliveries; `run` loops until cancelled."""

    def __init__(self, rt: Runtime, settings: DispatchSettings, box: SecretBox) -> None:
        self.rt = rt
        self.settings = settings
        self.box = box
        self.allow = ssrf.networks(settings.webhook_allow)
        self.wake = asyncio.Event()
        rt.state["webhook_wake"] = self.wake

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s,
                                        connect=min(2.0, self.settings.webhook_timeout_s))
        connector = aiohttp.TCPConnector(resolver=ssrf.GuardedResolver(self.allow), limit=self.settings.webhook_batch)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as http:
            while True:
                stop_if_cancelled()
                try:
                    done = await self.once(http)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the database may be briefly away; try again
                    log.warning("webhook delivery: %s", exc)
                    done = 0
                if done >= self.settings.webhook_batch:
                    continue
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.settings.webhook_poll_s)
                except TimeoutError:
                    pass

    async def once(self, http: aiohttp.ClientSession) -> int:
        """One pass: claim, send, record; returns how many were attempted."""
        claimed = await self._claim()
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(http, d, s) for d, s in claimed))
        await self._record(outcomes)
        return len(outcomes)

    async def _claim(self) -> list[tuple[WebhookDelivery, WebhookSubscription]]:
        now = utcnow()
        lease = now + dt.timedelta(seconds=self.settings.webhook_timeout_s * 2 + 5)
        async with self.rt.transaction() as session:
            stmt = (select(WebhookDelivery, WebhookSubscription)
                    .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                    .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                    .order_by(WebhookDelivery.next_attempt_at).limit(self.settings.webhook_batch)
                    .with_for_update(of=WebhookDelivery.__table__, skip_locked=True))  # type: ignore[attr-defined]
            rows = [(d, s) for d, s in (await session.execute(stmt)).all()]
            if rows:
                await session.execute(update(WebhookDelivery).where(
                    WebhookDelivery.id.in_([d.id for d, _ in rows])).values(next_attempt_at=lease))
            session.expunge_all()
        return rows

    async def _attempt(self, http: aiohttp.ClientSession, delivery: WebhookDelivery,
                       sub: WebhookSubscription) -> Outcome:
        at, started = utcnow(), time.perf_counter()
        status, error = None, ""
        try:
            body = delivery.body.encode()
            headers = signed_headers(self.box.open(sub.secret_sealed), delivery.event_id, body)
            async with http.post(sub.url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
                await response.content.read(self.settings.webhook_max_response_bytes)  # capped; the rest is dropped
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        took = (time.perf_counter() - started) * 1000
        return Outcome(delivery.id, not error, status, error, round(took, 1), at)

    async def _record(self, outcomes: list[Outcome]) -> None:
        backoff = self.settings.webhook_backoff_s
        async with self.rt.transaction() as session:
            for outcome in outcomes:
                row = await session.get(WebhookDelivery, outcome.delivery_id)
                if row is None:
                    continue  # its subscription was deleted meanwhile
                entry = {"at": outcome.at.isoformat(), "status_code": outcome.status_code, "error": outcome.error,
                         "took_ms": outcome.took_ms}
                entries = [*row.log, entry]
                row.log = entries if len(entries) <= MAX_LOG else [*entries[:MAX_LOG // 2], *entries[-MAX_LOG // 2:]]
                row.attempts += 1
                row.last_status_code, row.last_error = outcome.status_code, outcome.error
                if outcome.ok:
                    row.status, row.delivered_at, row.next_attempt_at = "delivered", outcome.at, None
                elif row.attempts > len(backoff):
                    row.status, row.next_attempt_at = "failed", None
                    log.warning("webhook delivery %s failed for good after %d attempts: %s", row.id, row.attempts,
                                outcome.error)
                else:
                    row.next_attempt_at = utcnow() + dt.timedelta(seconds=backoff[row.attempts - 1])


async def prune_deliveries_once(rt: Runtime, settings: DispatchSettings) -> dict[str, int]:
    """Delete delivered and failed deliveries older than `webhook_log_days` (0: keep); pending ones stay."""
    if not settings.webhook_log_days:
        return {}
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    cutoff = utcnow() - dt.timedelta(days=settings.webhook_log_days)
    return {"webhook_delivery": await prune_older(rt.sessions, table, table.c.created_at, cutoff,
                                                  batch=settings.retention_batch, also=table.c.status != "pending")}


async def prune_deliveries(rt: Runtime, settings: DispatchSettings) -> None:
    """Retention of the delivery log, every `retention_interval_s`, until cancelled."""
    await every(settings.retention_interval_s, "webhook deliveries", lambda: prune_deliveries_once(rt, settings))
