"""Dead letters of every service, for admins: one path for all, the gateway asking each service over HTTP.

`GET /api/v1/admin/dead-letters` gathers each service's parked messages (`/internal/dead-letters`, newest
first, `limit` per service; `next_cursor` carries each service's own cursor); a service that does not
answer is named in `unavailable` rather than failing the list. `POST
/api/v1/admin/dead-letters/{service}/{id}/replay` asks the owning service to run its handler again
(once: its inbox remembers), never republishing on another service's subject.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.config import SERVICES
from gateway.state import GATEWAY_IDENTITY, GatewayState, state_of
from shared.auth import issue_internal_token
from shared.errors import Forbidden, InvalidCursor, InvalidParameter, NotFound
from shared.observability import current_request_id
from shared.pagination import MAX_LIMIT

router = APIRouter(tags=["admin"])


class DeadLetterOut(BaseModel):
    """A consumed event parked after its last delivery (identity numbers masked)."""

    service: str
    id: int
    consumer: str = Field(description="the durable consumer that gave up on it")
    subject: str
    stream_seq: int
    event_id: str | None
    headers: dict[str, str]
    body: str
    error: str
    deliveries: int
    parked_at: dt.datetime
    replayed_at: dt.datetime | None
    replay_outcome: str | None = Field(None, description="handled, or duplicate if it had already taken effect")


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None = None
    unavailable: list[str] = Field([], description="services that did not answer (their letters are missing)")


class ReplayOut(DeadLetterOut):
    outcome: str = Field(description="handled (took effect now) or duplicate (it already had)")


def _admin_only(gw: GatewayState, authorization: str | None) -> None:
    if gw.caller(authorization).role != "admin":
        raise Forbidden("only admins handle dead letters")


def _cursors(cursor: str | None) -> dict[str, str] | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise InvalidCursor("this cursor is not from this list") from exc
    if not isinstance(value, dict) or not set(value) <= set(SERVICES):
        raise InvalidCursor("this cursor is not from this list")
    return value


async def _service(gw: GatewayState, service: str, method: str, path: str, **params: Any) -> tuple[int, Any]:
    assert gw.core.client is not None, "the gateway's lifespan has not started"
    headers = {"authorization": "Bearer " + issue_internal_token(gw.settings, GATEWAY_IDENTITY)}
    if (rid := current_request_id()) is not None:
        headers["x-request-id"] = rid
    async with gw.core.client.request(method, gw.settings.upstreams()[service] + path, headers=headers,
                                      params={k: v for k, v in params.items() if v is not None}) as r:
        return r.status, await r.json(content_type=None)


@router.get("/api/v1/admin/dead-letters", response_model=DeadLetterPage)
async def dead_letters(request: Request, authorization: Annotated[str | None, Header()] = None,
                       limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="per service")] = 50,
                       cursor: str | None = None,
                       service: Annotated[str | None, Query(description="one service only")] = None
                       ) -> DeadLetterPage:
    """Admin: every service's dead letters, newest first per service."""
    gw = state_of(request)
    _admin_only(gw, authorization)
    if service is not None and service not in SERVICES:
        raise InvalidParameter("service", f"service must be one of {', '.join(SERVICES)}")
    cursors = _cursors(cursor)
    names = [s for s in ((service,) if service else SERVICES) if cursors is None or s in cursors]

    async def one(name: str) -> tuple[str, Any]:
        try:
            status, page = await _service(gw, name, "GET", "/internal/dead-letters", limit=limit,
                                          cursor=(cursors or {}).get(name))
            return name, page if status == 200 else None
        except Exception:  # noqa: BLE001 - a service away: say so, list the others
            return name, None

    answers = await asyncio.gather(*(one(n) for n in names))
    items = [DeadLetterOut(service=name, **item) for name, page in answers if page for item in page["items"]]
    items.sort(key=lambda d: d.parked_at, reverse=True)
    more = {name: page["next_cursor"] for name, page in answers if page and page.get("next_cursor")}
    next_cursor = base64.urlsafe_b64encode(json.dumps(more).encode()).decode().rstrip("=") if more else None
    return DeadLetterPage(items=items, next_cursor=next_cursor, unavailable=[n for n, page in answers if not page])


@router.post("/api/v1/admin/dead-letters/{service}/{dead_letter_id}/replay", response_model=ReplayOut,
             responses={409: {"description": "the handler failed again (the letter stays parked)"}})
async def replay(service: str, dead_letter_id: int, request: Request,
                 authorization: Annotated[str | None, Header()] = None) -> Any:
    """Admin: run the owning service's handler again for one dead letter (takes effect once)."""
    gw = state_of(request)
    _admin_only(gw, authorization)
    if service not in SERVICES:
        raise NotFound(f"no service {service}")
    status, body = await _service(gw, service, "POST", f"/internal/dead-letters/{dead_letter_id}/replay")
    if status != 200:
        return JSONResponse(body, status_code=status, media_type="application/problem+json")
    return ReplayOut(service=service, **body)
