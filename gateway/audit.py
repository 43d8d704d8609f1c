"""Reading the audit log: `GET /api/v1/audit`, admins only, newest first, paged by cursor.

Entries are written by `audit_log.AuditLog` (writes through the gateway, and every login attempt).
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import AuditEntry
from gateway.state import state_of
from shared.errors import Forbidden
from shared.pagination import Keyset, Page, PageDep, PageRequest

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


AUDIT_ORDER = Keyset(AuditEntry.id, descending=True)  # type: ignore[arg-type]


@router.get("/api/v1/audit", response_model=Page[AuditOut])
async def audit(request: Request, page: PageDep, authorization: Annotated[str | None, Header()] = None,
                username: str | None = None) -> Page[AuditOut]:
    """Admin: the audit log of writes and logins, newest first (`next_cursor` pages back)."""
    gw = state_of(request)
    if gw.caller(authorization).role != "admin":
        raise Forbidden("only admins read the audit log")
    assert gw.sessions is not None, "the gateway's lifespan has not started"
    return await audit_page(gw.sessions, request=page, username=username)


async def audit_page(sessions: async_sessionmaker[AsyncSession], *, request: PageRequest,
                     username: str | None) -> Page[AuditOut]:
    """One page of entries, newest first, of one user if given."""
    query = select(AuditEntry)
    if username:
        query = query.where(AuditEntry.username == username)
    async with sessions() as session:
        rows, next_cursor = await AUDIT_ORDER.page(session, query, request)
    return Page[AuditOut](items=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
                          next_cursor=next_cursor)
