"""Liveness (`/healthz`), readiness (`/readyz`: every service answers its own /readyz) and `/metrics`."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway.config import SERVICES
from gateway.state import GatewayState, state_of

router = APIRouter(include_in_schema=False)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when every service is ready, else 503 with what each said."""
    gw = state_of(request)
    checks = dict(await asyncio.gather(*(_check(gw, name) for name in SERVICES)))
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics of this process."""
    body, content_type = state_of(request).metrics.render()
    return Response(body, media_type=content_type)


async def _check(gw: GatewayState, name: str) -> tuple[str, str]:
    try:
        assert gw.core.client is not None
        async with gw.core.client.get(gw.settings.upstreams()[name] + "/readyz") as r:
            return name, "ok" if r.status == 200 else f"not ready ({r.status})"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return name, f"unreachable ({type(exc).__name__})"
