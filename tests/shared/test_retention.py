"""Retention: sent outbox and inbox rows older than their settings go, newer (and unsent) stay, with two
replicas pruning the same database at once."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import MetaData, func, select

from shared.db import ensure_schema, make_engine, make_sessions, utcnow
from shared.outbox import Outbox, add_outbox_tables
from shared.retention import prune_messaging
from shared.settings import Settings

OLD, NEW = 420, 130  # rows per kind; batches of 50 make each replica loop several times


def test_the_inbox_must_outlast_the_outbox() -> None:
    with pytest.raises(ValueError, match="RETENTION_INBOX_DAYS"):
        Settings(retention_outbox_sent_days=7, retention_inbox_days=7)
    with pytest.raises(ValueError, match="RETENTION_INBOX_DAYS"):
        Settings(retention_outbox_sent_days=0, retention_inbox_days=30)
    assert Settings(retention_outbox_sent_days=0, retention_inbox_days=0).retention_inbox_days == 0


async def test_two_replicas_prune_old_rows_and_keep_new_and_unsent_ones(database_url: str) -> None:
    metadata = MetaData()
    outbox_table, inbox_table = add_outbox_tables(metadata)
    outbox = Outbox(outbox_table, inbox_table, source="retention-test")
    engines = [make_engine(database_url, schema="retention") for _ in range(2)]
    try:
        await ensure_schema(engines[0], "retention")
        async with engines[0].begin() as conn:
            await conn.run_sync(metadata.create_all)
        now = utcnow()
        old, new = now - dt.timedelta(days=8), now - dt.timedelta(days=6)
        inbox_old, inbox_new = now - dt.timedelta(days=31), now - dt.timedelta(days=29)

        def outbox_rows(n: int, created: dt.datetime, sent: dt.datetime | None, tag: str) -> list[dict]:
            return [{"event_id": f"{tag}-{i}-{uuid.uuid4().hex[:8]}", "subject": "x.y", "body": "{}",
                     "headers": "{}", "created_at": created, "sent_at": sent} for i in range(n)]

        sessions = [make_sessions(e) for e in engines]
        async with sessions[0]() as s, s.begin():
            await s.execute(outbox_table.insert(), outbox_rows(OLD, old, old, "old")
                            + outbox_rows(NEW, new, new, "new") + outbox_rows(25, old, None, "unsent"))
            await s.execute(inbox_table.insert(), [
                {"consumer": c, "event_id": f"{c}-{i}", "processed_at": inbox_old if i < OLD else inbox_new}
                for c in ("a", "b") for i in range(OLD + NEW)])
        settings = Settings(retention_batch=50)
        results = await asyncio.gather(*(prune_messaging(s, outbox, settings, now=now) for s in sessions))

        assert sum(r["outbox"] for r in results) == OLD
        assert sum(r["inbox"] for r in results) == 2 * OLD
        async with sessions[1]() as s:
            left = (await s.execute(select(outbox_table.c.event_id))).scalars().all()
            assert sorted({e.split("-")[0] for e in left}) == ["new", "unsent"] and len(left) == NEW + 25
            inbox_left = (await s.execute(select(func.min(inbox_table.c.processed_at), func.count()))).one()
            assert inbox_left[1] == 2 * NEW and inbox_left[0] >= inbox_new - dt.timedelta(seconds=1)
        assert await prune_messaging(sessions[0], outbox, settings, now=now) == {"outbox": 0, "inbox": 0}
    finally:
        for engine in engines:
            await engine.dispose()
