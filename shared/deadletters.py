"""Dead letters: a consumed event that keeps failing is parked in its service's `dead_letter` table.

A message is parked (subject, headers, body, error, delivery count, the stream sequence) once it has
failed `consumer_max_deliver` times or cannot be read at all, and only then `term()`-ed, so nothing
is dropped unseen. Identity numbers in what is kept are masked (`shared.privacy.mask_identity`): a
raw number in a bad message never lands in a table. Admins list the parked messages and replay one
(`router`), which runs the owning consumer's handler again through the inbox: a replay takes effect once.
"""
from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from shared.privacy import mask_identity

#: an 18-character resident identity number (17 digits and a digit or X), or a 15-digit old one
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
#: keys whose string values are identity numbers whatever they look like
_ID_KEYS = re.compile(r"id_?number|id_?card|identity", re.IGNORECASE)
MAX_TEXT = 64_000  # what is kept of a body, headers or an error


def add_dead_letter_table(metadata: MetaData) -> Table:
    """Declare `dead_letter` in a service's metadata (its migrations create it)."""
    table = Table(
        "dead_letter",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("consumer", String(100), nullable=False),
        Column("subject", String(200), nullable=False),
        Column("stream_seq", BigInteger, nullable=False),
        Column("event_id", String(64), nullable=True),
        Column("headers", Text, nullable=False),
        Column("body", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("deliveries", Integer, nullable=False),
        Column("parked_at", UTCDateTime, nullable=False),
        Column("replayed_at", UTCDateTime, nullable=True),
        Column("replay_outcome", String(16), nullable=True),
        UniqueConstraint("consumer", "stream_seq", name="uq_dead_letter_consumer_stream_seq"),
    )
    Index("ix_dead_letter_parked_at", table.c.parked_at)
    return table


def mask_text(text: str) -> str:
    """Every identity number in free text masked."""
    return _ID_NUMBER.sub(lambda m: mask_identity(m.group(1)), text)


def mask_value(value: Any, key: str = "") -> Any:
    """A JSON value with identity numbers masked: under identity-number keys, and any that looks like one."""
    if isinstance(value, dict):
        return {k: mask_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, key) for v in value]
    if isinstance(value, str):
        return mask_identity(value) if _ID_KEYS.search(key) and not key.endswith(("_hash", "_masked")) \
            else mask_text(value)
    return value


def mask_body(raw: bytes) -> str:
    """A message body as text with identity numbers masked (as JSON if it is JSON, else as text)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.dumps(mask_value(json.loads(text)), ensure_ascii=False)[:MAX_TEXT]
    except ValueError:
        return mask_text(text)[:MAX_TEXT]


async def park(session: AsyncSession, table: Table, *, consumer: str, subject: str, stream_seq: int,
               event_id: str | None, headers: dict[str, str] | None, body: bytes, error: str,
               deliveries: int) -> bool:
    """Keep a message that will not be delivered again; False if it was parked before (a redelivery)."""
    stmt = insert_ignoring_duplicates(
        table, session.bind.dialect.name, consumer=consumer, subject=subject, stream_seq=stream_seq,
        event_id=event_id, headers=json.dumps(mask_value(dict(headers or {})), ensure_ascii=False)[:MAX_TEXT],
        body=mask_body(body), error=mask_text(error)[:MAX_TEXT], deliveries=deliveries, parked_at=utcnow())
    return (await session.execute(stmt)).rowcount == 1


def as_item(row: Any) -> dict[str, Any]:
    """A parked message as the admin API shows it."""
    return {"id": row.id, "consumer": row.consumer, "subject": row.subject, "stream_seq": row.stream_seq,
            "event_id": row.event_id, "headers": json.loads(row.headers), "body": row.body, "error": row.error,
            "deliveries": row.deliveries, "parked_at": row.parked_at.isoformat(),
            "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
            "replay_outcome": row.replay_outcome}
