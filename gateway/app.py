"""The gateway: the one public API. Logs callers in, checks roles and jurisdiction, limits, forwards, audits.

Forwarded paths are handled by `proxy.ProxyMiddleware` (pure ASGI, the hot path); this module wires
it and serves the gateway's own routes: token, me, the merged OpenAPI document and /docs, audit,
health and metrics.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Header, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from gateway.accounts import UNIT_ROLES, AccountStore, hash_secret, identity_of_account, verify_secret
from gateway.audit import AuditLog
from gateway.config import GatewaySettings
from gateway.forward import make_client
from gateway.limits import RateLimiter, retry_after
from gateway.models import AuditEntry
from gateway.openapi import MergedDocument
from gateway.proxy import WWW_AUTHENTICATE, GatewayCore, Proxy, TokenCache
from gateway.retention import prune_audit_loop
from gateway.routes import Router
from gateway.units import UnitTree
from shared.auth import Identity, bearer, issue_internal_token, issue_token, verify_token
from shared.db import ensure_schema, make_engine, make_sessions
from shared.errors import Forbidden, Invalid, NotFound, Unauthorized, install_problem_handlers, problem
from shared.migrations import upgrade
from shared.observability import Metrics, RequestContextMiddleware, configure_logging, current_request_id
from shared.pagination import Page, decode_cursor, encode_cursor

SERVICES = ("classification", "tracing", "dispatch", "assessment")
MIGRATIONS = Path(__file__).parent / "migrations"
DEMO_FIXED = ("admin", "command", "platform")


class TokenOut(BaseModel):
    """An OAuth2 token response."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_token: str | None = Field(
        None, description="password grant only: trade it at the token endpoint (grant_type=refresh_token) for a "
                          "new pair, so the mobile app need not keep the password")

    model_config = {"json_schema_extra": {"examples": [{
        "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…", "token_type": "bearer", "expires_in": 3600,
        "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…"}]}}


class IdentityOut(BaseModel):
    """Who a token belongs to."""

    username: str
    role: str
    unit_id: str | None = None

    model_config = {"json_schema_extra": {"examples": [{"username": "ps-yiqiao", "role": "station",
                                                        "unit_id": "ps-yiqiao"}]}}


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
    metrics = Metrics("gateway")
    upstreams = settings.upstreams()
    core = GatewayCore(settings=settings, router=Router(upstreams, settings.extra_routes),
                       tokens=TokenCache(settings), limiter=RateLimiter(settings.rate_per_s, settings.rate_burst))
    login_limiter = RateLimiter(settings.login_rate_per_min / 60, burst=settings.login_burst)
    gateway_identity = Identity(username="gateway", role="admin")

    async def get_json(url: str) -> dict | list:
        assert core.client is not None
        headers = {"authorization": "Bearer " + issue_internal_token(settings, gateway_identity)}
        async with core.client.get(url, headers=headers) as r:
            r.raise_for_status()
            return await r.json()

    async def fetch_units() -> list[dict]:
        units = await get_json(upstreams["dispatch"] + "/api/v1/units")
        return units if isinstance(units, list) else units.get("items", [])  # a page, should it become one

    async def fetch_doc(name: str) -> dict:
        doc = await get_json(upstreams[name] + "/internal/openapi.json")
        assert isinstance(doc, dict)
        return doc

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("gateway", settings.log_level)
        engine = make_engine(settings.database(), schema="gateway")
        sessions = make_sessions(engine)
        app.state.sessions = sessions
        app.state.accounts = AccountStore(sessions)
        app.state.demo_hash = None
        if settings.demo_accounts_enabled:
            app.state.demo_hash = await asyncio.to_thread(hash_secret, settings.demo_password.get_secret_value())
        for attempt in range(5):  # worker processes starting together on one SQLite file: the loser tries again
            try:
                await ensure_schema(engine, "gateway")
                await upgrade(engine, MIGRATIONS, schema="gateway")
                for name in DEMO_FIXED if app.state.demo_hash else ():
                    await app.state.accounts.ensure(username=name, kind="client" if name == "platform" else "user",
                                                    role=name, secret_hash=app.state.demo_hash)
                break
            except DBAPIError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.3 * (attempt + 1))
        core.client = make_client(settings.upstream_timeout_s, settings.upstream_connect_timeout_s)
        core.audit = AuditLog(sessions, flush_s=settings.audit_flush_s)
        core.units = UnitTree(fetch_units, settings.unit_tree_ttl_s)
        audit_task = asyncio.create_task(core.audit.run(), name="audit")
        retention_task = asyncio.create_task(prune_audit_loop(sessions, settings), name="retention")  # issue 18
        try:
            yield
        finally:
            audit_task.cancel()
            retention_task.cancel()
            await asyncio.gather(audit_task, retention_task, return_exceptions=True)
            await core.client.close()
            await engine.dispose()

    app = GatewayApp(title="jiaozhi", version="1", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
                  description="Traffic–security integrated policing: the public API. Log in at "
                              "`POST /api/v1/auth/token`, then send `Authorization: Bearer <access_token>`. "
                              "Every error is `application/problem+json`; every answer carries `X-Request-ID`.")
    app.state.core = core
    document = MergedDocument(app.openapi, fetch_doc, SERVICES, retry_s=settings.openapi_retry_s)
    install_problem_handlers(app)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return problem(401, exc.kind, exc.title, exc.detail, instance=request.url.path,
                       headers={"WWW-Authenticate": WWW_AUTHENTICATE})

    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.proxy = Proxy(core)
    app.fast_path = RequestContextMiddleware(app.proxy, metrics=metrics)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        async def check(name: str) -> tuple[str, str]:
            try:
                assert core.client is not None
                async with core.client.get(upstreams[name] + "/readyz") as r:
                    return name, "ok" if r.status == 200 else f"not ready ({r.status})"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                return name, f"unreachable ({type(exc).__name__})"

        checks = dict(await asyncio.gather(*(check(n) for n in SERVICES)))
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(await document.get())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/v1/openapi.json", title="jiaozhi API")

    @app.post("/api/v1/auth/token", response_model=TokenOut, response_model_exclude_none=True, tags=["auth"])
    async def token(request: Request, grant_type: Annotated[str, Form()],
                    username: Annotated[str | None, Form()] = None, password: Annotated[str | None, Form()] = None,
                    client_id: Annotated[str | None, Form()] = None,
                    client_secret: Annotated[str | None, Form()] = None,
                    refresh_token: Annotated[str | None, Form()] = None) -> Response:
        """OAuth2 token: `password` grant for officers, `client_credentials` for platforms, `refresh_token`
        to renew an officer's session without the password (mobile app)."""
        address = request.client.host if request.client else "unknown"
        name = username if grant_type == "password" else client_id if grant_type == "client_credentials" else None
        status = 401
        try:
            if (wait := login_limiter.take(address)) > 0:
                status = 429
                return problem(429, "too-many-requests", "Too many requests", "too many token requests; slow down",
                               instance=request.url.path, headers={"Retry-After": retry_after(wait)})
            identity, refreshable = await _grant(request.app, grant_type, name, password, client_secret,
                                                 refresh_token)
            status = 200
            out = TokenOut(access_token=issue_token(settings, identity), expires_in=settings.token_ttl_s,
                           refresh_token=issue_token(settings, identity, typ="refresh") if refreshable else None)
            return JSONResponse(out.model_dump(exclude_none=True), headers={"Cache-Control": "no-store"})
        finally:
            assert core.audit is not None
            core.audit.record(username=name, role=None, method="POST", path=f"/api/v1/auth/token#{grant_type}"[:64],
                              status=status, request_id=current_request_id(), client=address)

    async def _grant(app: FastAPI, grant_type: str, name: str | None, password: str | None,
                     client_secret: str | None, refresh: str | None) -> tuple[Identity, bool]:
        accounts: AccountStore = app.state.accounts
        if grant_type == "refresh_token":
            if not refresh:
                raise Unauthorized("refresh_token missing")
            identity = verify_token(settings, refresh, typ="refresh")
            account = await accounts.get(identity.username)
            still_valid = (account is not None and not account.disabled and account.role == identity.role) or (
                account is None and identity.role in UNIT_ROLES and app.state.demo_hash is not None)
            if not still_valid:
                raise Unauthorized("the account behind this refresh token is no longer active")
            return identity, True
        if grant_type not in ("password", "client_credentials"):
            raise Unauthorized("grant_type must be password, client_credentials or refresh_token")
        secret = password if grant_type == "password" else client_secret
        if not name or not secret:
            raise Unauthorized("credentials missing")
        # client_credentials is for platform clients only; the password form takes any account (a platform
        # may log in through it too), but only officers get a refresh token
        account = await accounts.authenticate(name, secret, kind="client" if grant_type == "client_credentials"
                                              else None)
        if account is not None:
            return identity_of_account(account), account.kind == "user"
        if grant_type == "password" and app.state.demo_hash is not None and await accounts.get(name) is None:
            identity = await _demo_unit(app, name, secret)
            if identity is not None:
                return identity, True
        raise Unauthorized("unknown user or wrong password")

    async def _demo_unit(app: FastAPI, unit_id: str, secret: str) -> Identity | None:
        """Demo only: a station's or squadron's id logs in with the demo password (dispatch says what it is)."""
        if not await asyncio.to_thread(verify_secret, app.state.demo_hash, secret):
            return None
        try:
            unit = await get_json(f"{upstreams['dispatch']}/api/v1/units/{unit_id}")
        except Exception:  # noqa: BLE001 - dispatch away or no such unit: nobody can log in as it
            return None
        role = {"station": "station", "squadron": "squadron"}.get(unit.get("kind", "") if isinstance(unit, dict)
                                                                  else "")
        return Identity(username=unit_id, role=role, unit_id=unit_id) if role else None  # type: ignore[arg-type]

    def _caller(authorization: str | None) -> Identity:
        return core.tokens.identity(bearer(authorization))

    @app.get("/api/v1/me", response_model=IdentityOut, tags=["auth"])
    async def me(authorization: Annotated[str | None, Header()] = None) -> IdentityOut:
        """Who the token belongs to."""
        identity = _caller(authorization)
        return IdentityOut(**identity.model_dump())

    @app.get("/api/v1/audit", response_model=Page[AuditOut], tags=["audit"])
    async def audit(request: Request, authorization: Annotated[str | None, Header()] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: str | None = None,
                    username: str | None = None) -> Page[AuditOut]:
        """Admin: the audit log of writes and logins, newest first (`next_cursor` pages back)."""
        identity = _caller(authorization)
        if identity.role != "admin":
            raise Forbidden("only admins read the audit log")
        key = decode_cursor(cursor)
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)  # type: ignore[union-attr]
        if key:
            if not isinstance(key[0], int):
                raise Invalid("malformed cursor")
            query = query.where(AuditEntry.id < key[0])  # type: ignore[operator]
        if username:
            query = query.where(AuditEntry.username == username)
        async with request.app.state.sessions() as session:
            rows = list((await session.execute(query)).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return Page[AuditOut](items=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
                              next_cursor=encode_cursor(rows[-1].id) if more and rows else None)

    @app.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    async def unrouted(path: str, request: Request) -> Response:
        raise NotFound(f"no such resource: {request.url.path}")

    return app
