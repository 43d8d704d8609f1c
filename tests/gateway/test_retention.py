"""The gateway's audit log: entries older than the setting are pruned, newer ones stay, two workers at once."""
from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from gateway.config import GatewaySettings
from gateway.models import AuditEntry, LoginFailure, RefreshToken, metadata
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


async def test_expired_refresh_tokens_and_stale_failure_counts_are_pruned(tmp_path: object) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/gw.db")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        now, sessions = utcnow(), make_sessions(engine)
        hour = dt.timedelta(hours=1)
        async with sessions() as s, s.begin():
            s.add_all(RefreshToken(jti=f"j{i}", family="f", username="u", issued_at=now - 2 * hour,
                                   expires_at=now + (hour if i else -hour), used_at=None, revoked_at=None)
                      for i in range(2))
            s.add_all(LoginFailure(username="u", client=f"c{i}", failures=9, blocked_until=None,
                                   updated_at=now - dt.timedelta(days=2 if i else 0)) for i in range(2))
        pruned = await prune_audit(sessions, GatewaySettings(), now=now)
        assert (pruned["refresh_token"], pruned["login_failure"]) == (1, 1)
        async with sessions() as s:
            assert (await s.execute(select(RefreshToken.jti))).scalars().all() == ["j1"]
            assert (await s.execute(select(LoginFailure.client))).scalars().all() == ["c0"]
    finally:
        await engine.dispose()
