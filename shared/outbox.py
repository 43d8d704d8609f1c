"""The transactional outbox and the inbox of processed events, as tables in each service's database."""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bulk import insert_many
from shared.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from shared.deadletters import add_dead_letter_table
from shared.events import Envelope, Fact
from shared.observability import current_request_id
from shared.telemetry import inject_current

MARK_CHUNK = 10_000  # seqs per UPDATE … IN (…): PostgreSQL takes at most 32,767 parameters


def add_outbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Declare `outbox` and `inbox` (and `dead_letter`, shared.deadletters) in a service's metadata (so its
    migrations create them)."""
    add_dead_letter_table(metadata)
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
        self.dead_letters: Table = outbox.metadata.tables["dead_letter"]  # declared with them
        self.source = source

    async def stage(self, session: AsyncSession, fact: Fact, *, subject: str | None = None) -> Envelope:
        """Write `fact` to the outbox inside the session's open transaction."""
        envelope = Envelope(
            source=self.source, type=fact.subject, subject=subject, time=utcnow(), data=fact.model_dump(mode="json")
        )
        headers = _headers()
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

    async def stage_many(self, session: AsyncSession, fact_type: type[Fact], payloads: Sequence[dict[str, Any]], *,
                         subjects: Sequence[str | None] | None = None) -> list[str]:
        """`stage` for many facts of one type in one INSERT; return their event ids in order.

        The payloads are validated against the contract together (pydantic.ValidationError if any is
        wrong; nothing is staged then), and each body is the envelope `stage` would write.
        """
        if subjects is not None and len(subjects) != len(payloads):
            raise ValueError("one subject per payload")
        if not payloads:
            return []
        adapter = _list_adapter(fact_type)
        data = adapter.dump_python(adapter.validate_python(payloads), mode="json")
        time = utcnow()
        headers = _headers()
        stamp = Envelope(source=self.source, type=fact_type.subject, time=time, data={}).model_dump(mode="json")
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        # the envelope's fields in Envelope's order, around each payload (as model_dump_json writes them)
        head = '{"specversion":' + encode(stamp["specversion"]) + ',"id":"'
        middle = '","source":' + encode(self.source) + ',"type":' + encode(fact_type.subject) + ',"subject":'
        tail = (',"time":' + encode(stamp["time"]) + ',"datacontenttype":' + encode(stamp["datacontenttype"])
                + ',"data":')
        header_text = json.dumps(headers)
        ids = uuid4_strings(len(data))
        per_event = subjects if subjects is not None else [None] * len(data)
        rows = [{"event_id": event_id, "body": head + event_id + middle + encode(subject) + tail + encode(item) + "}"}
                for event_id, subject, item in zip(ids, per_event, data, strict=True)]
        await insert_many(session, self.table, rows,
                          constants={"subject": fact_type.subject, "headers": header_text, "created_at": time})
        session.info["staged_events"] = session.info.get("staged_events", 0) + len(rows)
        return ids

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
        now = utcnow()
        for i in range(0, len(seqs), MARK_CHUNK):
            chunk = seqs[i:i + MARK_CHUNK]
            await session.execute(update(self.table).where(self.table.c.seq.in_(chunk)).values(sent_at=now))

    async def pending_count(self, session: AsyncSession) -> int:
        """How many rows wait to be published."""
        stmt = select(func.count()).select_from(self.table).where(self.table.c.sent_at.is_(None))
        return int((await session.execute(stmt)).scalar_one())

    async def backlog(self, session: AsyncSession) -> tuple[int, dt.datetime | None]:
        """(rows waiting to be published, when the oldest of them was staged)."""
        stmt = select(func.count(), func.min(self.table.c.created_at)).where(self.table.c.sent_at.is_(None))
        count, oldest = (await session.execute(stmt)).one()
        return int(count), oldest


def _headers() -> dict[str, str]:
    """Headers stored with a staged row: the request id, and the trace context (when tracing) to carry on."""
    headers: dict[str, str] = {}
    if rid := current_request_id():
        headers["X-Request-ID"] = rid
    return inject_current(headers)


def uuid4_strings(n: int) -> list[str]:
    """n random (version 4) UUIDs as text, like `str(uuid.uuid4())` but made together."""
    import numpy as np  # only where events are staged by the ten thousand

    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in (text[i:i + 32] for i in range(0, 32 * n, 32))]


@functools.cache
def _list_adapter(fact_type: type[Fact]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[fact_type])  # type: ignore[valid-type]
