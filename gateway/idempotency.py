"""`Idempotency-Key` (IETF httpapi draft) on POST, PUT, PATCH and DELETE through the gateway.

The first answer (below 500) to a caller's key is kept for `idempotency_ttl_h` and replayed to a retry
(`Idempotent-Replayed: true`); the same key with another request (method, path, query or body) is a 422
problem; a retry while the first is still in flight is a 409 problem with `Retry-After`. Keys live in the
gateway's database, so every replica and worker shares them. A 5xx is not kept (the key is released),
so a retry after a gateway or upstream failure is forwarded again; services' own idempotency (an
incident's `external_id`, a task's expected version) covers a write the upstream applied before failing.
A key left in flight by a crashed gateway is taken over after `lease_s`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import IdempotencyKey
from shared.auth import Identity
from shared.db import insert_ignoring_duplicates, utcnow

Send = Callable[[dict], Awaitable[None]]
TABLE = IdempotencyKey.__table__  # type: ignore[attr-defined]
HEADER = b"idempotency-key"


class KeyProblem(Exception):
    """A key the gateway refuses (status 400, 409 or 422)."""

    def __init__(self, status: int, kind: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail


@dataclass
class IdempotencyStore:
    sessions: async_sessionmaker[AsyncSession]
    ttl_s: float = 86400.0
    lease_s: float = 30.0

    async def begin(self, username: str, key: str, fingerprint: str) -> Any:
        """None if this request is the first with the key (it now holds it), else the kept row."""
        now = utcnow()
        async with self.sessions() as session, session.begin():
            inserted = await session.execute(insert_ignoring_duplicates(
                TABLE, session.bind.dialect.name, username=username, key=key, fingerprint=fingerprint,
                created_at=now))
            if inserted.rowcount == 1:
                return None
            row = (await session.execute(select(TABLE).where(TABLE.c.username == username, TABLE.c.key == key))).first()
            if row is None:
                return None  # pruned meanwhile: forward without a guard rather than fail
            stale = row.created_at < now - dt.timedelta(seconds=self.ttl_s if row.status is not None else self.lease_s)
            if stale:  # expired, or left in flight by a crashed gateway: take it over (compare-and-set)
                taken = await session.execute(update(TABLE).where(
                    TABLE.c.username == username, TABLE.c.key == key, TABLE.c.created_at == row.created_at)
                    .values(fingerprint=fingerprint, created_at=now, status=None, headers=None, body=None))
                if taken.rowcount == 1:
                    return None
            return row

    async def finish(self, username: str, key: str, status: int, headers: list[tuple[bytes, bytes]],
                     body: bytes) -> None:
        kept = json.dumps([[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers])
        async with self.sessions() as session, session.begin():
            await session.execute(update(TABLE).where(TABLE.c.username == username, TABLE.c.key == key)
                                  .values(status=status, headers=kept, body=body))

    async def release(self, username: str, key: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(delete(TABLE).where(TABLE.c.username == username, TABLE.c.key == key,
                                                      TABLE.c.status.is_(None)))


def fingerprint(scope: dict, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope.get("raw_path") or scope["path"].encode(),
                 scope.get("query_string", b""), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def key_of(scope: dict) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            key = value.decode("latin-1").strip()
            if not 1 <= len(key) <= 255 or not key.isprintable():
                raise KeyProblem(400, "invalid-idempotency-key", "Invalid Idempotency-Key",
                                 "Idempotency-Key must be 1 to 255 printable characters")
            return key
    return None


async def idempotent(store: IdempotencyStore, scope: dict, identity: Identity, body: bytes, send: Send,
                     forward: Callable[[Send], Awaitable[int]]) -> int:
    """Forward a write once per caller and key; replay the kept answer to a retry."""
    key = key_of(scope)
    if key is None:
        return await forward(send)
    print_ = fingerprint(scope, body)
    kept = await store.begin(identity.username, key, print_)
    if kept is not None:
        if kept.fingerprint != print_:
            raise KeyProblem(422, "idempotency-key-reused", "Idempotency-Key reused",
                             "this Idempotency-Key was used for another request; use a new key")
        if kept.status is None:
            raise KeyProblem(409, "idempotency-key-in-flight", "Request in progress",
                             "the first request with this Idempotency-Key is still being processed")
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(kept.headers or "[]")]
        await send({"type": "http.response.start", "status": kept.status,
                    "headers": headers + [(b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": kept.body or b""})
        return kept.status
    answer: dict[str, Any] = {"status": 0, "headers": [], "body": []}

    async def capture(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer["body"].append(message.get("body", b""))
        await send(message)

    try:
        status = await forward(capture)
    except BaseException:
        await store.release(identity.username, key)
        raise
    if 0 < answer["status"] < 500:
        await store.finish(identity.username, key, answer["status"], answer["headers"], b"".join(answer["body"]))
    else:
        await store.release(identity.username, key)
    return status
