"""The gateway: the one public API. Logs callers in, checks roles and jurisdiction, limits, forwards, audits.

`create_app` assembles it. Forwarded paths go straight to `proxy.Proxy` (pure ASGI, the hot path);
the gateway's own routes are FastAPI routers, one file a concept: `grants` (token, me), `audit`
(the audit list), `openapi` (the merged document), `asyncapi` (the events' document), `health` (healthz,
readyz, metrics), `admin` (dead letters), `account_api` (accounts) and `console` (the web console at `/`
and the API docs page at `/docs`, static files from the package).
What they share is a `state.GatewayState` on `app.state.gateway`, opened and closed by `lifespan`.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from gateway import account_api, admin, asyncapi, audit, console, grants, health, labels, openapi
from gateway.config import SERVICES, GatewaySettings
from gateway.lifespan import MIGRATIONS, lifespan
from gateway.limits import RateLimiter
from gateway.observe import instrument
from gateway.proxy import WWW_AUTHENTICATE, GatewayCore, Proxy, TokenCache
from gateway.routes import Router
from gateway.state import GatewayState
from shared.auth import signing_key_of
from shared.errors import NotFound, Unauthorized, install_problem_handlers, problem
from shared.i18n import request_language
from shared.observability import Metrics, RequestContextMiddleware

__all__ = ["MIGRATIONS", "GatewayApp", "create_app"]

DESCRIPTION = ("Traffic–security integrated policing: the public API. Log in at `POST /api/v1/auth/token`, then "
               "send `Authorization: Bearer <access_token>`. Every error is `application/problem+json`; every "
               "answer carries `X-Request-ID`.")

unrouted_router = APIRouter(include_in_schema=False)


@unrouted_router.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unrouted(path: str, request: Request) -> Response:
    """A public path no service serves (the proxy forwards every routed one first)."""
    raise NotFound(f"no such resource: {request.url.path}")


async def unauthorized(request: Request, exc: Exception) -> JSONResponse:
    """401 with the bearer challenge."""
    assert isinstance(exc, Unauthorized)
    title, detail = exc.localised(request_language(request))
    return problem(401, exc.kind, title, detail, instance=request.url.path,
                   headers={"WWW-Authenticate": WWW_AUTHENTICATE})


class GatewayApp(FastAPI):
    """FastAPI for the gateway's own routes; forwarded requests go straight to the proxy (the hot path)."""

    fast_path: RequestContextMiddleware
    proxy: Proxy

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.proxy.upstream(scope) is not None:
            await self.fast_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: GatewaySettings | None = None) -> GatewayApp:
    """The gateway app, built from the given settings (or the environment)."""
    settings = settings or GatewaySettings()
    signing_key_of(settings)  # fails here, clearly, when the gateway has no key to sign tokens with
    core = GatewayCore(settings=settings, router=Router(settings.upstreams(), settings.extra_routes),
                       tokens=TokenCache(settings), limiter=RateLimiter(settings.rate_per_s, settings.rate_burst))
    gw = GatewayState(settings=settings, core=core, metrics=Metrics("gateway"),
                      login_limiter=RateLimiter(settings.login_rate_per_min / 60, burst=settings.login_burst))
    app = GatewayApp(title="jiaozhi", version="1", lifespan=lifespan, openapi_url=None, docs_url=None,
                     redoc_url=None, description=DESCRIPTION)
    app.state.gateway = gw
    app.state.document = openapi.MergedDocument(app.openapi, gw.service_document, SERVICES,
                                                retry_s=settings.openapi_retry_s)
    install_problem_handlers(app)
    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_middleware(RequestContextMiddleware, metrics=gw.metrics)
    app.proxy = Proxy(core)
    app.fast_path = RequestContextMiddleware(app.proxy, metrics=gw.metrics)
    for router in (health.router, openapi.router, asyncapi.router, grants.router, audit.router, labels.router,
                   admin.router, account_api.router,
                   unrouted_router):
        app.include_router(router)  # in this order: the catch-all last
    console.install(app)
    return instrument(app)
