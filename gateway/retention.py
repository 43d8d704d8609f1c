"""The gateway's retention (see docs/OPERATIONS.md): audit entries older than `retention_audit_days`, idempotency
keys older than `idempotency_ttl_h`, refresh tokens once expired, failed-login counts a day after their last failure
(when no back-off can still hold)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import GatewaySettings
from gateway.models import AuditEntry, IdempotencyKey, LoginFailure, RefreshToken
from shared.db import utcnow
from shared.retention import every, prune_older


async def prune_audit(sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings, *,
                      now: dt.datetime | None = None) -> dict[str, int]:
    """Delete audit entries older than the setting (0 days: keep forever), idempotency keys older than
    `idempotency_ttl_h`, expired refresh tokens and stale failed-login counts; return how many went."""
    now = now or utcnow()
    keys, refresh, failures = (IdempotencyKey.__table__, RefreshToken.__table__,  # type: ignore[attr-defined]
                               LoginFailure.__table__)  # type: ignore[attr-defined]
    stale = now - dt.timedelta(seconds=settings.login_backoff_max_s) - dt.timedelta(days=1)
    out = {"idempotency_keys": await prune_older(sessions, keys, keys.c.created_at,
                                                 now - dt.timedelta(hours=settings.idempotency_ttl_h),
                                                 batch=settings.retention_batch),
           "refresh_token": await prune_older(sessions, refresh, refresh.c.expires_at, now,
                                              batch=settings.retention_batch),
           "login_failure": await prune_older(sessions, failures, failures.c.updated_at, stale,
                                              batch=settings.retention_batch)}
    if settings.retention_audit_days <= 0:
        return out | {"audit": 0}
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    cutoff = now - dt.timedelta(days=settings.retention_audit_days)
    return out | {"audit": await prune_older(sessions, table, table.c.at, cutoff, batch=settings.retention_batch)}


async def prune_audit_loop(sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings) -> None:
    """Prune the audit log every `retention_interval_s` until cancelled (each gateway worker may run it)."""
    await every(settings.retention_interval_s, "audit", lambda: prune_audit(sessions, settings))
