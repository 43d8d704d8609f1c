"""Retention: old rows pruned by age, in bounded batches, safely from several replicas at once.

Every service prunes its sent outbox rows and its inbox rows (`prune_loop`, started by the runtime);
the gateway prunes its audit log with the same `prune_older` (gateway/retention.py). Why the
defaults are what they are: docs/OPERATIONS.md.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import utcnow
from shared.outbox import Outbox
from shared.settings import Settings

log = logging.getLogger(__name__)
DAY_S = 86400.0


async def prune_older(sessions: async_sessionmaker[AsyncSession], table: Table, column: Any, cutoff: dt.datetime, *,
                      batch: int, also: ColumnElement[bool] | None = None) -> int:
    """Delete the rows of `table` whose `column` is before `cutoff` (and `also` holds); return how many.

    At most `batch` rows per transaction, so no delete holds locks for long or grows the WAL unboundedly.
    On PostgreSQL each batch picks its rows with FOR UPDATE SKIP LOCKED: replicas pruning at the same
    time take different rows instead of waiting on (or deadlocking with) each other. SQLite has one
    writer at a time anyway.
    """
    pk = list(table.primary_key.columns)
    key = pk[0] if len(pk) == 1 else tuple_(*pk)
    total = 0
    while True:
        async with sessions() as session, session.begin():
            pick = select(*pk).where(column < cutoff)
            if also is not None:
                pick = pick.where(also)
            pick = pick.limit(batch)
            if session.bind.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            deleted = (await session.execute(delete(table).where(key.in_(pick)))).rowcount or 0
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # let requests and consumers in between batches


async def prune_messaging(sessions: async_sessionmaker[AsyncSession], outbox: Outbox, settings: Settings,
                          *, now: dt.datetime | None = None) -> dict[str, int]:
    """Prune sent outbox rows and inbox rows older than their settings (0 days: keep forever)."""
    now = now or utcnow()
    pruned = {"outbox": 0, "inbox": 0}
    if settings.retention_outbox_sent_days > 0:
        table = outbox.table
        cutoff = now - dt.timedelta(days=settings.retention_outbox_sent_days)
        pruned["outbox"] = await prune_older(sessions, table, table.c.sent_at, cutoff,
                                             batch=settings.retention_batch, also=table.c.sent_at.is_not(None))
    if settings.retention_inbox_days > 0:
        cutoff = now - dt.timedelta(days=settings.retention_inbox_days)
        pruned["inbox"] = await prune_older(sessions, outbox.inbox, outbox.inbox.c.processed_at, cutoff,
                                            batch=settings.retention_batch)
    return pruned


async def every(interval_s: float, what: str, work: Any) -> None:
    """Run `await work()` now (after a random delay of up to a minute, so replicas started together do not
    prune in step) and then every `interval_s` seconds, logging failures, until cancelled."""
    await asyncio.sleep(random.uniform(0, min(60.0, interval_s)))
    while True:
        try:
            pruned = await work()
            if any(pruned.values()):
                log.info("retention: pruned %s", ", ".join(f"{n} {k} rows" for k, n in pruned.items()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be briefly away; try next time
            log.warning("retention (%s): %s", what, exc)
        await asyncio.sleep(interval_s)


class Pruned(Protocol):
    """What `prune_loop` needs of a service's runtime (shared.runtime.Runtime)."""

    settings: Any
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox


async def prune_loop(rt: Pruned, settings: Settings | None = None) -> None:
    """A service's retention: sent outbox and inbox rows, every `retention_interval_s`, until cancelled."""
    settings = settings or rt.settings
    await every(settings.retention_interval_s, rt.outbox.source,
                lambda: prune_messaging(rt.sessions, rt.outbox, settings))
