"""Every service's dead-letter endpoints (internal: the gateway's `/api/v1/admin/dead-letters` asks each service).

`GET /internal/dead-letters` lists the parked messages, newest first (`limit`, `cursor`);
`POST /internal/dead-letters/{id}/replay` runs the owning consumer's handler again (once: through the inbox).
Admins only.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import select

from shared.auth import Identity, bearer, verify_internal_token
from shared.deadletters import as_item
from shared.errors import Forbidden, InvalidCursor, NotFound
from shared.pagination import MAX_LIMIT, decode_cursor, encode_cursor

router = APIRouter(prefix="/internal/dead-letters", tags=["dead letters"], include_in_schema=False)


def _admin(request: Request, authorization: str | None) -> Any:
    rt = request.app.state.rt
    who: Identity = verify_internal_token(rt.settings, bearer(authorization))
    if who.role != "admin":
        raise Forbidden("dead letters are for admins")
    return rt


@router.get("")
async def list_dead_letters(request: Request, authorization: Annotated[str | None, Header()] = None,
                            limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
                            cursor: str | None = None) -> dict[str, Any]:
    """Parked messages, newest first."""
    rt = _admin(request, authorization)
    table = rt.outbox.dead_letters
    stmt = select(table).order_by(table.c.id.desc()).limit(limit + 1)
    if (key := decode_cursor(cursor)) is not None:
        if len(key) != 1 or not isinstance(key[0], int):
            raise InvalidCursor("this cursor is not from this list")
        stmt = stmt.where(table.c.id < key[0])
    async with rt.sessions() as session:
        rows = list((await session.execute(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [as_item(r) for r in rows], "next_cursor": encode_cursor(rows[-1].id) if more else None}


@router.post("/{dead_letter_id}/replay")
async def replay_dead_letter(dead_letter_id: int, request: Request,
                             authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """Run the owning consumer's handler again: `handled` the first time, `duplicate` if it already took effect."""
    rt = _admin(request, authorization)
    table = rt.outbox.dead_letters
    async with rt.sessions() as session:
        row = (await session.execute(select(table).where(table.c.id == dead_letter_id))).first()
    if row is None:
        raise NotFound(f"no dead letter {dead_letter_id}")
    consumer = rt.state.get("consumers", {}).get(row.consumer)
    if consumer is None:
        raise NotFound(f"no consumer {row.consumer} in this service any more")
    outcome = await consumer.replay(row)
    async with rt.sessions() as session:
        row = (await session.execute(select(table).where(table.c.id == dead_letter_id))).first()
    return as_item(row) | {"outcome": outcome}
