"""The gateway: the one public API; authenticates, checks roles, forwards to the services."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Form, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.accounts import Accounts
from gateway.config import GatewaySettings
from gateway.forward import forward, make_client
from gateway.routes import Router, door_allows
from shared.auth import Identity, bearer, issue_token, verify_token
from shared.errors import Forbidden, NotFound, Unauthorized, install_problem_handlers, problem
from shared.observability import Metrics, RequestContextMiddleware, configure_logging, current_request_id

SERVICES = ("classification", "tracing", "dispatch", "assessment")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway app, built from the given settings (or the environment)."""
    settings = settings or GatewaySettings()
    metrics = Metrics("gateway")
    upstreams = {name: getattr(settings, f"{name}_url") for name in SERVICES}
    router = Router(upstreams, settings.extra_routes)
    service_token = issue_token(settings, Identity(username="gateway", role="admin"), ttl_s=10 * 365 * 86400)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("gateway", settings.log_level)
        app.state.client = make_client(settings.upstream_timeout_s)
        app.state.accounts = Accounts(settings.demo_password.get_secret_value()) if settings.demo_accounts else None
        try:
            yield
        finally:
            await app.state.client.close()

    app = FastAPI(title="jiaozhi", version="1", lifespan=lifespan, openapi_url="/api/v1/gateway-openapi.json",
                  description="Traffic–security integrated policing: the public API.")
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        async def check(name: str) -> tuple[str, str]:
            try:
                async with app.state.client.get(upstreams[name] + "/readyz") as r:
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

    @app.post("/api/v1/auth/token", response_model=TokenOut, tags=["auth"])
    async def token(grant_type: Annotated[str, Form()], username: Annotated[str | None, Form()] = None,
                    password: Annotated[str | None, Form()] = None, client_id: Annotated[str | None, Form()] = None,
                    client_secret: Annotated[str | None, Form()] = None) -> TokenOut:
        """OAuth2 token: `password` grant for officers, `client_credentials` for platforms."""
        if grant_type == "password":
            name, secret = username, password
        elif grant_type == "client_credentials":
            name, secret = client_id, client_secret
        else:
            raise Unauthorized("grant_type must be password or client_credentials")
        if not name or not secret:
            raise Unauthorized("credentials missing")
        identity = await _authenticate(app, name, secret, client=grant_type == "client_credentials")
        if identity is None:
            raise Unauthorized("unknown user or wrong password")
        return TokenOut(access_token=issue_token(settings, identity), expires_in=settings.token_ttl_s)

    async def _authenticate(app: FastAPI, name: str, secret: str, *, client: bool) -> Identity | None:
        accounts: Accounts | None = app.state.accounts
        if accounts is None:
            return None
        identity = await asyncio.to_thread(accounts.check_fixed, name, secret)
        if client:
            return identity if identity is not None and identity.role == "platform" else None
        if identity is not None:
            return identity
        try:
            async with app.state.client.get(f"{upstreams['dispatch']}/api/v1/units/{name}",
                                            headers={"authorization": f"Bearer {service_token}"}) as r:
                if r.status != 200:
                    return None
                unit = await r.json()
        except Exception:  # noqa: BLE001 - dispatch away: nobody can log in as a unit
            return None
        return await asyncio.to_thread(accounts.check_unit, unit["id"], unit["kind"], secret)

    @app.get("/api/v1/me", response_model=Identity, tags=["auth"])
    async def me(authorization: Annotated[str | None, Header()] = None) -> Identity:
        """Who the token belongs to."""
        return verify_token(settings, bearer(authorization))

    @app.api_route("/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    async def public(path: str, request: Request) -> Response:
        full = request.url.path
        upstream = router.upstream(full)
        if upstream is None:
            raise NotFound(f"no such resource: {full}")
        identity = verify_token(settings, bearer(request.headers.get("authorization")))
        if not door_allows(identity, request.method, full):
            raise Forbidden(f"role {identity.role} may not {request.method} {full}")
        too_large = problem(413, "payload-too-large", "Payload too large",
                            f"bodies are limited to {settings.max_body_bytes} bytes", instance=full)
        if int(request.headers.get("content-length") or 0) > settings.max_body_bytes:
            return too_large  # refuse before reading it
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            return too_large  # a chunked body without a length
        return await forward(app.state.client, upstream, request, body, current_request_id())

    return app
