"""The gateway's audit log: entries older than the setting are pruned, newer ones stay, two workers at once."""
from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from gateway.config import GatewaySettings
from gateway.models import AuditEntry, metadata
from gateway.retention import prune_audit
from shared.db import ensure_schema, make_engine, make_sessions, utcnow


async def test_two_gateway_workers_prune_old_audit_entries_only(database_url: str) -> None:
    engines = [make_engine(database_url, schema="gateway") for _ in range(2)]
    try:
        await ensure_schema(engines[0], "gateway")
        async with engines[0].begin() as conn:
            await conn.run_sync(metadata.create_all)
        now = utcnow()
        settings = GatewaySettings(retention_audit_days=400, retention_batch=40)
        cutoff = now - dt.timedelta(days=400)
        sessions = [make_sessions(e) for e in engines]
        async with sessions[0]() as s, s.begin():
            s.add_all(AuditEntry(at=cutoff + dt.timedelta(hours=h), method="POST", path="/api/v1/x", status=201)
                      for h in range(-300, 100))
        results = await asyncio.gather(*(prune_audit(s, settings, now=now) for s in sessions))
        assert sum(r["audit"] for r in results) == 300
        async with sessions[1]() as s:
            oldest, count = (await s.execute(select(func.min(AuditEntry.at), func.count()))).one()
        assert count == 100 and oldest >= cutoff
    finally:
        for engine in engines:
            await engine.dispose()
