"""The gateway's lifespan: its database (schema, migrations, demo accounts), the upstream client, the
unit tree, and the background loops; shutdown is bounded by `shutdown_s` (shared.lifecycle).

A background loop is a coroutine function of the gateway's state that runs until cancelled; add one
to `LOOPS` and it is started once the database is ready and stopped (within the shutdown budget)
before the client and the database close.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.accounts import AccountStore, hash_secret
from gateway.audit_log import AuditLog
from gateway.breaker import Breakers
from gateway.forward import make_client
from gateway.idempotency import IdempotencyStore
from gateway.logins import LoginGuard, RefreshTokens
from gateway.retention import prune_audit_loop
from gateway.state import GatewayState
from gateway.units import UnitTree
from shared.db import ensure_schema, make_engine, make_sessions
from shared.lifecycle import Deadline, Loops, bounded
from shared.migrations import upgrade
from shared.observability import configure_logging

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

Loop = Callable[[GatewayState], Awaitable[None]]


async def write_audit_log(gw: GatewayState) -> None:
    """Write queued audit entries in batches (and what is left when cancelled)."""
    assert gw.core.audit is not None
    await gw.core.audit.run()


async def prune_audit(gw: GatewayState) -> None:
    """Retention: drop audit entries and idempotency keys older than the settings (docs/OPERATIONS.md)."""
    assert gw.sessions is not None
    await prune_audit_loop(gw.sessions, gw.settings)


async def probe_upstreams(gw: GatewayState) -> None:
    """Open and close each upstream's circuit breaker by its /healthz (gateway/breaker.py)."""
    assert gw.core.breakers is not None and gw.core.client is not None
    await gw.core.breakers.run(gw.core.client)


#: name → loop, run for the gateway's lifetime
LOOPS: dict[str, Loop] = {"audit": write_audit_log, "retention": prune_audit, "probe": probe_upstreams}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open what the gateway needs, run its loops, and close it all again."""
    gw: GatewayState = app.state.gateway
    settings = gw.settings
    configure_logging("gateway", settings.log_level)
    engine = make_engine(settings.database(), schema="gateway")
    loops = Loops("gateway")
    try:
        gw.sessions = make_sessions(engine)
        gw.engine = engine
        gw.accounts = AccountStore(gw.sessions)
        gw.logins, gw.refresh_tokens = LoginGuard(gw.sessions, settings), RefreshTokens(gw.sessions, settings)
        gw.demo_hash = None
        if settings.demo_accounts_enabled:
            gw.demo_hash = await asyncio.to_thread(hash_secret, settings.demo_password.get_secret_value())
        await _prepare_database(engine, gw)
        gw.core.client = make_client(settings.upstream_timeout_s, settings.upstream_connect_timeout_s,
                                     gw.core.telemetry.client_trace_configs())
        gw.core.audit = AuditLog(gw.sessions, flush_s=settings.audit_flush_s)
        gw.core.units = UnitTree(gw.unit_list, settings.unit_tree_ttl_s)
        gw.core.breakers = Breakers(settings.upstreams(), settings.breaker_failures, settings.probe_interval_s,
                                    settings.probe_timeout_s)
        gw.core.idempotency = IdempotencyStore(gw.sessions, ttl_s=settings.idempotency_ttl_h * 3600,
                                               lease_s=3 * settings.upstream_timeout_s)
        for name, loop in LOOPS.items():
            loops.start(name, loop(gw))
        yield
    finally:
        await shut_down(gw, engine, loops)


async def _prepare_database(engine: AsyncEngine, gw: GatewayState) -> None:
    """Schema, migrations and the demo accounts (worker processes starting together on one SQLite file: the
    loser tries again)."""
    assert gw.accounts is not None
    for attempt in range(5):
        try:
            await ensure_schema(engine, "gateway")
            await upgrade(engine, MIGRATIONS, schema="gateway")
            if gw.demo_hash:
                await gw.accounts.ensure_demo(gw.demo_hash)
            return
        except DBAPIError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.3 * (attempt + 1))


async def shut_down(gw: GatewayState, engine: AsyncEngine, loops: Loops) -> None:
    """Stop the loops, write what the audit log still holds, close the client and the pool, all within
    `shutdown_s`; log what had to be cut."""
    budget_s = gw.settings.shutdown_s
    started, deadline, cut = time.monotonic(), Deadline(budget_s), []
    cut += await loops.stop(deadline.left(budget_s * 0.5))
    if gw.core.audit is not None and not await bounded(gw.core.audit.flush(), seconds=deadline.left(budget_s * 0.2),
                                                       what="writing the last audit entries"):
        cut.append("audit-flush")
    if gw.core.client is not None and not await bounded(gw.core.client.close(),
                                                        seconds=deadline.left(budget_s * 0.1),
                                                        what="closing the upstream client"):
        cut.append("client-close")
    if not await bounded(engine.dispose(), seconds=deadline.left(), what="disposing the database pool"):
        cut.append("db-dispose")
    if cut:
        log.warning("gateway stopped in %.2fs; cut: %s", time.monotonic() - started, ", ".join(cut))
