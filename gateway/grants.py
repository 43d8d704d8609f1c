"""Logging in: the OAuth2 token endpoint and its grants, and `GET /api/v1/me`.

Grants: `password` (officers; any account), `client_credentials` (platform clients only),
`refresh_token` (an officer's session renewed without the password), and in the demo a station's or
squadron's id with the demo password (dispatch says what the unit is). Token requests are limited
per client address and every attempt is audited (never the secret).
"""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.accounts import UNIT_ROLES, AccountStore, identity_of_account, verify_secret
from gateway.limits import retry_after
from gateway.state import GatewayState, state_of
from shared.auth import Identity, issue_token, verify_token
from shared.errors import Unauthorized, problem
from shared.observability import current_request_id

router = APIRouter(tags=["auth"])


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


@router.post("/api/v1/auth/token", response_model=TokenOut, response_model_exclude_none=True)
async def token(request: Request, grant_type: Annotated[str, Form()],
                username: Annotated[str | None, Form()] = None, password: Annotated[str | None, Form()] = None,
                client_id: Annotated[str | None, Form()] = None,
                client_secret: Annotated[str | None, Form()] = None,
                refresh_token: Annotated[str | None, Form()] = None) -> Response:
    """OAuth2 token: `password` grant for officers, `client_credentials` for platforms, `refresh_token`
    to renew an officer's session without the password (mobile app)."""
    gw = state_of(request)
    address = request.client.host if request.client else "unknown"
    name = username if grant_type == "password" else client_id if grant_type == "client_credentials" else None
    status = 401
    try:
        if (wait := gw.login_limiter.take(address)) > 0:
            status = 429
            return problem(429, "too-many-requests", "Too many requests", "too many token requests; slow down",
                           instance=request.url.path, headers={"Retry-After": retry_after(wait)})
        identity, refreshable = await grant(gw, grant_type, name, password, client_secret, refresh_token)
        status = 200
        out = TokenOut(access_token=issue_token(gw.settings, identity), expires_in=gw.settings.token_ttl_s,
                       refresh_token=issue_token(gw.settings, identity, typ="refresh") if refreshable else None)
        return JSONResponse(out.model_dump(exclude_none=True), headers={"Cache-Control": "no-store"})
    finally:
        assert gw.core.audit is not None
        gw.core.audit.record(username=name, role=None, method="POST", path=f"/api/v1/auth/token#{grant_type}"[:64],
                             status=status, request_id=current_request_id(), client=address)


@router.get("/api/v1/me", response_model=IdentityOut)
async def me(request: Request, authorization: Annotated[str | None, Header()] = None) -> IdentityOut:
    """Who the token belongs to."""
    identity = state_of(request).caller(authorization)
    return IdentityOut(**identity.model_dump())


async def grant(gw: GatewayState, grant_type: str, name: str | None, password: str | None,
                client_secret: str | None, refresh: str | None) -> tuple[Identity, bool]:
    """The identity a grant proves and whether it earns a refresh token; Unauthorized otherwise."""
    accounts = gw.accounts
    assert accounts is not None, "the gateway's lifespan has not started"
    if grant_type == "refresh_token":
        return await _refreshed(gw, accounts, refresh), True
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
    if grant_type == "password" and gw.demo_hash is not None and await accounts.get(name) is None:
        identity = await demo_unit(gw, name, secret)
        if identity is not None:
            return identity, True
    raise Unauthorized("unknown user or wrong password")


async def _refreshed(gw: GatewayState, accounts: AccountStore, refresh: str | None) -> Identity:
    """The identity of a refresh token whose account is still active with the same role."""
    if not refresh:
        raise Unauthorized("refresh_token missing")
    identity = verify_token(gw.settings, refresh, typ="refresh")
    account = await accounts.get(identity.username)
    still_valid = (account is not None and not account.disabled and account.role == identity.role) or (
        account is None and identity.role in UNIT_ROLES and gw.demo_hash is not None)
    if not still_valid:
        raise Unauthorized("the account behind this refresh token is no longer active")
    return identity


async def demo_unit(gw: GatewayState, unit_id: str, secret: str) -> Identity | None:
    """Demo only: a station's or squadron's id logs in with the demo password (dispatch says what it is)."""
    assert gw.demo_hash is not None
    if not await asyncio.to_thread(verify_secret, gw.demo_hash, secret):
        return None
    try:
        unit = await gw.service_json("dispatch", f"/api/v1/units/{unit_id}")
    except Exception:  # noqa: BLE001 - dispatch away or no such unit: nobody can log in as it
        return None
    role = {"station": "station", "squadron": "squadron"}.get(unit.get("kind", "") if isinstance(unit, dict)
                                                              else "")
    return Identity(username=unit_id, role=role, unit_id=unit_id) if role else None  # type: ignore[arg-type]
