"""The gateway's lifespan: its database (schema, migrations, demo accounts), the upstream client, the
unit tree, and the background loops, stopped in reverse on shutdown.

A background loop is a coroutine function of the gateway's state that runs until cancelled; add one
to `LOOPS` and it is started once the database is ready and cancelled (with `STOP_DEADLINE_S` to
finish) before the client and the database close.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.accounts import AccountStore, hash_secret
from gateway.audit_log import AuditLog
from gateway.forward import make_client
from gateway.state import GatewayState
from gateway.units import UnitTree
from shared.db import ensure_schema, make_engine, make_sessions
from shared.migrations import upgrade
from shared.observability import configure_logging

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
STOP_DEADLINE_S = 5.0

Loop = Callable[[GatewayState], Awaitable[None]]


async def write_audit_log(gw: GatewayState) -> None:
    """Write queued audit entries in batches (and what is left when cancelled)."""
    assert gw.core.audit is not None
    await gw.core.audit.run()


#: name → loop, run for the gateway's lifetime
LOOPS: dict[str, Loop] = {"audit": write_audit_log}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open what the gateway needs, run its loops, and close it all again."""
    gw: GatewayState = app.state.gateway
    settings = gw.settings
    configure_logging("gateway", settings.log_level)
    engine = make_engine(settings.database(), schema="gateway")
    gw.sessions = make_sessions(engine)
    gw.accounts = AccountStore(gw.sessions)
    gw.demo_hash = None
    if settings.demo_accounts_enabled:
        gw.demo_hash = await asyncio.to_thread(hash_secret, settings.demo_password.get_secret_value())
    await _prepare_database(engine, gw)
    gw.core.client = make_client(settings.upstream_timeout_s, settings.upstream_connect_timeout_s)
    gw.core.audit = AuditLog(gw.sessions, flush_s=settings.audit_flush_s)
    gw.core.units = UnitTree(gw.unit_list, settings.unit_tree_ttl_s)
    tasks = [asyncio.create_task(loop(gw), name=name) for name, loop in LOOPS.items()]
    try:
        yield
    finally:
        await stop(tasks, STOP_DEADLINE_S)
        await gw.core.client.close()
        await engine.dispose()


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


async def stop(tasks: list[asyncio.Task], deadline_s: float) -> None:
    """Cancel the tasks and wait up to `deadline_s` for them to finish; log those that failed or lingered."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("background loop %s failed", task.get_name(), exc_info=task.exception())
    for task in pending:
        log.warning("background loop %s did not stop within %g s", task.get_name(), deadline_s)
