"""Liveness (`/healthz`), readiness (`/readyz`: this gateway can serve) and `/metrics`.

Readiness means "this pod can do its own job": its database (accounts, tokens, audit, idempotency keys)
answers. A service being down does not make the gateway unready (that would take every gateway pod out
of its Service, and the whole API with it, for one service): its routes answer 503 through its circuit
breaker instead (gateway/breaker.py). The breakers' states are in the answer, for people.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway.state import state_of
from shared.db import ping

router = APIRouter(include_in_schema=False)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when the gateway's own database answers within 2 s, else 503; the upstreams' breakers for information."""
    gw = state_of(request)
    database = "ok"
    try:
        assert gw.engine is not None, "not started"
        await asyncio.wait_for(ping(gw.engine), 2)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        database = f"unreachable ({type(exc).__name__})"
    ready = database == "ok"
    upstreams = gw.core.breakers.states() if gw.core.breakers is not None else {}
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": {"database": database},
                         "upstreams": upstreams}, status_code=200 if ready else 503)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics of this process."""
    body, content_type = state_of(request).metrics.render()
    return Response(body, media_type=content_type)
