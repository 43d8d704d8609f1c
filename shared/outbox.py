"""The transactional outbox and the inbox of processed events, as tables in each service's database."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from shared.events import Envelope, Fact
from shared.observability import current_request_id


def add_outbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Declare `outbox` and `inbox` in a service's metadata (so its migrations create them)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),
        Column("body", Text, nullable=False),
        Column("headers", Text, nullable=False, default="{}"),
        Column("created_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime, nullable=True),
    )
    Index("ix_outbox_unsent", outbox.c.sent_at, outbox.c.seq)
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", UTCDateTime, nullable=False),
    )
    return outbox, inbox


class Outbox:
    """Stages events in the caller's transaction; the relay publishes them after commit."""

    def __init__(self, outbox: Table, inbox: Table, *, source: str) -> None:
        self.table = outbox
        self.inbox = inbox
        self.source = source

    async def stage(self, session: AsyncSession, fact: Fact, *, subject: str | None = None) -> Envelope:
        """Write `fact` to the outbox inside the session's open transaction."""
        envelope = Envelope(
            source=self.source, type=fact.subject, subject=subject, time=utcnow(), data=fact.model_dump(mode="json")
        )
        headers: dict[str, str] = {}
        if rid := current_request_id():
            headers["X-Request-ID"] = rid
        await session.execute(
            self.table.insert().values(
                event_id=envelope.id,
                subject=fact.subject,
                body=envelope.model_dump_json(),
                headers=json.dumps(headers),
                created_at=envelope.time,
            )
        )
        session.info.setdefault("staged_events", 0)
        session.info["staged_events"] += 1
        return envelope

    async def claim_for(self, session: AsyncSession, *, consumer: str, event_id: str) -> bool:
        """Record the event as processed by `consumer`; False if it already was (a redelivery)."""
        stmt = insert_ignoring_duplicates(
            self.inbox, session.bind.dialect.name, consumer=consumer, event_id=event_id, processed_at=utcnow()
        )
        result = await session.execute(stmt)
        return result.rowcount == 1

    async def unsent(self, session: AsyncSession, limit: int) -> list[Any]:
        """The oldest rows not yet published (skipping rows another replica holds, on PostgreSQL)."""
        stmt = select(self.table).where(self.table.c.sent_at.is_(None)).order_by(self.table.c.seq).limit(limit)
        if session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        return list((await session.execute(stmt)).all())

    async def mark_sent(self, session: AsyncSession, seqs: list[int]) -> None:
        """Mark published rows."""
        await session.execute(update(self.table).where(self.table.c.seq.in_(seqs)).values(sent_at=utcnow()))

    async def pending_count(self, session: AsyncSession) -> int:
        """How many rows wait to be published."""
        stmt = select(func.count()).select_from(self.table).where(self.table.c.sent_at.is_(None))
        return int((await session.execute(stmt)).scalar_one())
