"""Logging in: the OAuth2 token endpoint and its grants, and `GET /api/v1/me`.

Grants: `password` (officers; any account), `client_credentials` (platform clients only),
`refresh_token` (an officer's session renewed without the password), and in the demo a station's or
squadron's id with the demo password (dispatch says what the unit is). Token requests are limited
per client address (X-Forwarded-For counts only from a trusted proxy); wrong passwords slow down the
one account at the one address they come from (gateway/logins.py: 429 with Retry-After). Refresh tokens
rotate on use (a replay revokes the session) and `POST /api/v1/auth/logout` revokes them. Every attempt
is audited (never the secret).
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
from shared.auth import Identity, decode_claims, identity_of, issue_token
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
    address = gw.client(request)
    name = username if grant_type == "password" else client_id if grant_type == "client_credentials" else None
    status = 401
    assert gw.logins is not None and gw.refresh_tokens is not None, "the gateway's lifespan has not started"
    try:
        wait = gw.login_limiter.take(address) or (await gw.logins.wait_s(name, address) if name else 0.0)
        if wait > 0:
            status = 429
            return problem(429, "too-many-requests", "Too many requests",
                           "too many token requests or failed logins; try again after Retry-After seconds",
                           instance=request.url.path, headers={"Retry-After": retry_after(wait)})
        try:
            identity, family = await grant(gw, grant_type, name, password, client_secret, refresh_token)
        except Unauthorized:
            if name:
                await gw.logins.failed(name, address)
            raise
        if name:
            await gw.logins.succeeded(name, address)
        status = 200
        refresh = None
        if family is not None:
            jti = await gw.refresh_tokens.issue(identity.username, family or None)
            refresh = issue_token(gw.settings, identity, typ="refresh", extra={"jti": jti})
        out = TokenOut(access_token=issue_token(gw.settings, identity), expires_in=gw.settings.token_ttl_s,
                       refresh_token=refresh)
        return JSONResponse(out.model_dump(exclude_none=True), headers={"Cache-Control": "no-store"})
    finally:
        assert gw.core.audit is not None
        gw.core.audit.record(username=name, role=None, method="POST", path=f"/api/v1/auth/token#{grant_type}"[:64],
                             status=status, request_id=current_request_id(), client=address)


@router.post("/api/v1/auth/logout", status_code=204, response_class=Response,
             responses={401: {"description": "not a valid refresh token"}})
async def logout(request: Request, refresh_token: Annotated[str, Form()]) -> Response:
    """Log out: the refresh token and every token of its session (family) stop working at once. Access
    tokens already issued stay valid until they expire (`expires_in`, an hour by default)."""
    gw = state_of(request)
    assert gw.refresh_tokens is not None and gw.core.audit is not None, "the gateway's lifespan has not started"
    status = 401
    username = None
    try:
        claims = decode_claims(gw.settings, refresh_token, typ="refresh")
        username = claims["sub"]
        if not await gw.refresh_tokens.revoke(claims["jti"]):
            raise Unauthorized("unknown refresh token")
        status = 204
        return Response(status_code=204)
    finally:
        gw.core.audit.record(username=username, role=None, method="POST", path="/api/v1/auth/logout", status=status,
                             request_id=current_request_id(), client=gw.client(request))


@router.get("/api/v1/me", response_model=IdentityOut)
async def me(request: Request, authorization: Annotated[str | None, Header()] = None) -> IdentityOut:
    """Who the token belongs to."""
    identity = state_of(request).caller(authorization)
    return IdentityOut(**identity.model_dump())


async def grant(gw: GatewayState, grant_type: str, name: str | None, password: str | None,
                client_secret: str | None, refresh: str | None) -> tuple[Identity, str | None]:
    """The identity a grant proves and the refresh-token family it continues ("" for a new one, None for no
    refresh token); Unauthorized otherwise."""
    accounts = gw.accounts
    assert accounts is not None, "the gateway's lifespan has not started"
    if grant_type == "refresh_token":
        return await _refreshed(gw, accounts, refresh)
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
        return identity_of_account(account), "" if account.kind == "user" else None
    if grant_type == "password" and gw.demo_hash is not None and await accounts.get(name) is None:
        identity = await demo_unit(gw, name, secret)
        if identity is not None:
            return identity, ""
    raise Unauthorized("unknown user or wrong password")


async def _refreshed(gw: GatewayState, accounts: AccountStore, refresh: str | None) -> tuple[Identity, str]:
    """The identity of a refresh token whose account is still active with the same role, and its family (the
    token is used up: traded again after the grace window it revokes the family)."""
    if not refresh:
        raise Unauthorized("refresh_token missing")
    claims = decode_claims(gw.settings, refresh, typ="refresh")
    identity = identity_of(claims)
    assert gw.refresh_tokens is not None
    family = await gw.refresh_tokens.trade(claims["jti"])
    account = await accounts.get(identity.username)
    still_valid = (account is not None and not account.disabled and account.role == identity.role) or (
        account is None and identity.role in UNIT_ROLES and gw.demo_hash is not None)
    if not still_valid:
        raise Unauthorized("the account behind this refresh token is no longer active")
    return identity, family


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
