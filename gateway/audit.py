"""Reading the audit log: `GET /api/v1/audit`, admins only, newest first, paged by cursor.

Entries are written by `audit_log.AuditLog` (writes through the gateway, and every login attempt).
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import AuditEntry
from gateway.state import state_of
from shared.errors import Forbidden, Invalid
from shared.pagination import Page, decode_cursor, encode_cursor

router = APIRouter(tags=["audit"])


class AuditOut(BaseModel):
    """One audited write."""

    id: int
    at: dt.datetime
    username: str | None
    role: str | None
    method: str
    path: str
    status: int
    request_id: str | None
    client: str | None


@router.get("/api/v1/audit", response_model=Page[AuditOut])
async def audit(request: Request, authorization: Annotated[str | None, Header()] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None,
                username: str | None = None) -> Page[AuditOut]:
    """Admin: the audit log of writes and logins, newest first (`next_cursor` pages back)."""
    gw = state_of(request)
    if gw.caller(authorization).role != "admin":
        raise Forbidden("only admins read the audit log")
    assert gw.sessions is not None, "the gateway's lifespan has not started"
    return await audit_page(gw.sessions, limit=limit, cursor=cursor, username=username)


async def audit_page(sessions: async_sessionmaker[AsyncSession], *, limit: int, cursor: str | None,
                     username: str | None) -> Page[AuditOut]:
    """One page of entries, newest first: those before the cursor's entry, of one user if given."""
    key = decode_cursor(cursor)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)  # type: ignore[union-attr]
    if key:
        if not isinstance(key[0], int):
            raise Invalid("malformed cursor")
        query = query.where(AuditEntry.id < key[0])  # type: ignore[operator]
    if username:
        query = query.where(AuditEntry.username == username)
    async with sessions() as session:
        rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[AuditOut](items=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
                          next_cursor=encode_cursor(rows[-1].id) if more and rows else None)
