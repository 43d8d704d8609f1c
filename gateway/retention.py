"""The gateway's retention: audit entries older than `retention_audit_days` and idempotency keys older than
`idempotency_ttl_h` are pruned (see docs/OPERATIONS.md)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import GatewaySettings
from gateway.models import AuditEntry, IdempotencyKey
from shared.db import utcnow
from shared.retention import every, prune_older


async def prune_audit(sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings, *,
                      now: dt.datetime | None = None) -> dict[str, int]:
    """Delete audit entries older than the setting (0 days: keep forever) and idempotency keys older than
    `idempotency_ttl_h`; return how many went."""
    now = now or utcnow()
    keys = IdempotencyKey.__table__  # type: ignore[attr-defined]
    pruned = {"idempotency_keys": await prune_older(
        sessions, keys, keys.c.created_at, now - dt.timedelta(hours=settings.idempotency_ttl_h),
        batch=settings.retention_batch)}
    if settings.retention_audit_days <= 0:
        return {"audit": 0} | pruned
    table = AuditEntry.__table__  # type: ignore[attr-defined]
    cutoff = now - dt.timedelta(days=settings.retention_audit_days)
    return {"audit": await prune_older(sessions, table, table.c.at, cutoff, batch=settings.retention_batch)} | pruned


async def prune_audit_loop(sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings) -> None:
    """Prune the audit log every `retention_interval_s` until cancelled (each gateway worker may run it)."""
    await every(settings.retention_interval_s, "audit", lambda: prune_audit(sessions, settings))
