"""Accounts over the public API, for admins: create, list, read, change (role, unit, disabled), reset a secret.

`POST /api/v1/accounts` creates an officer (`kind=user`, password grant) or a platform client
(`kind=client`, client credentials); without a `password` one is generated and returned once, in
`secret`, never again. `PATCH /api/v1/accounts/{username}` changes the role and unit or disables
(`disabled: true`) — a disabled account cannot log in or refresh, its access tokens run out within the
TTL. `POST /api/v1/accounts/{username}/password` sets a new secret (given or generated, returned once)
and revokes the account's refresh tokens. A station or squadron account must name a unit dispatch knows,
of its kind. Every call through here is audited (never a secret); the same `AccountStore` serves the
`jiaozhi accounts` CLI.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote

import aiohttp
from fastapi import APIRouter, Body, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.accounts import AccountStore, new_client_secret, new_password
from gateway.models import Account
from gateway.policy import door_allows
from gateway.state import GatewayState, state_of
from shared.auth import Identity
from shared.errors import DomainError, Forbidden, Invalid, NotFound
from shared.observability import current_request_id
from shared.pagination import Keyset, Page, PageDep

router = APIRouter(tags=["accounts"])

Role = Literal["admin", "command", "squadron", "station", "platform"]
USERNAME = r"^[A-Za-z0-9_.@-]+$"
SQUADRON_KINDS = ("squadron", "case_squadron", "order_squadron", "foundation_squadron")
ACCOUNT_ORDER = Keyset(Account.username)  # type: ignore[arg-type]


class AccountIn(BaseModel):
    """An account to create."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"username": "li.wei", "kind": "user", "role": "station", "unit_id": "ps-yiqiao"}]})
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    kind: Literal["user", "client"] = Field("user", description="user: an officer; client: an integrating platform")
    role: Role
    unit_id: str | None = Field(None, max_length=64, description="station and squadron accounts: their unit")
    password: str | None = Field(None, min_length=8, max_length=256,
                                 description="omit to have one generated (returned once, in `secret`)")


class AccountOut(BaseModel):
    """An account (never its secret)."""

    model_config = ConfigDict(from_attributes=True)
    username: str
    kind: str
    role: str
    unit_id: str | None
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class AccountCreated(AccountOut):
    secret: str | None = Field(None, description="the generated password or client secret: shown only here")


class AccountPatch(BaseModel):
    """What to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"disabled": True}]})
    role: Role | None = None
    unit_id: str | None = Field(None, max_length=64)
    disabled: bool | None = Field(None, description="true: the account can no longer log in or refresh")


class PasswordIn(BaseModel):
    """A new password or client secret; omit it to have one generated."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"password": "a-new-password"}]})
    password: str | None = Field(None, min_length=8, max_length=256)


RESET_EXAMPLES = {"generated": {"summary": "generate one (returned once)", "value": {}},
                  "given": {"summary": "set this one", "value": {"password": "a-new-password"}}}


class SecretOut(BaseModel):
    username: str
    secret: str | None = Field(None, description="the generated password or client secret: shown only here")


class Unavailable(DomainError):
    status, kind, title = 503, "upstream-unavailable", "Upstream unavailable"


async def _as_admin(request: Request, authorization: str | None, ok: int,
                    work: Callable[[GatewayState, AccountStore], Awaitable[Any]]) -> Any:
    """Run `work` for an admin caller; writes are audited with their outcome (never the body)."""
    gw = state_of(request)
    identity: Identity | None = None
    status = 500
    try:
        identity = gw.caller(authorization)
        # the policy table says admins only; the role is checked here too, for a name the table's patterns miss
        if identity.role != "admin" or not door_allows(identity, request.method, request.url.path):
            raise Forbidden("only admins manage accounts")
        assert gw.accounts is not None, "the gateway's lifespan has not started"
        result = await work(gw, gw.accounts)
        status = ok
        return result
    except DomainError as exc:
        status = exc.status
        raise
    finally:
        if request.method != "GET" and gw.core.audit is not None:
            gw.core.audit.record(username=identity.username if identity else None,
                                 role=identity.role if identity else None, method=request.method,
                                 path=request.url.path, status=status, request_id=current_request_id(),
                                 client=gw.client(request))


async def check_unit(gw: GatewayState, role: str, unit_id: str | None) -> None:
    """A station or squadron account's unit exists in dispatch and is of its kind."""
    if role not in ("station", "squadron") or not unit_id:
        return
    try:
        unit = await gw.service_json("dispatch", f"/api/v1/units/{quote(unit_id, safe='')}")
    except aiohttp.ClientResponseError as exc:
        if exc.status == 404:
            raise Invalid(f"no unit {unit_id}", unit_id=unit_id) from exc
        raise Unavailable("dispatch could not say whether the unit exists; try again") from exc
    except Exception as exc:  # noqa: BLE001 - dispatch away: the account cannot be checked now
        raise Unavailable("dispatch could not say whether the unit exists; try again") from exc
    kind = unit.get("kind") if isinstance(unit, dict) else None
    if (role == "station") != (kind == "station") or (role == "squadron" and kind not in SQUADRON_KINDS):
        raise Invalid(f"unit {unit_id} is a {kind}, not a {role}", unit_id=unit_id)


@router.post("/api/v1/accounts", response_model=AccountCreated, status_code=201,
             responses={409: {"description": "an account of this name exists"}})
async def create_account(data: AccountIn, request: Request,
                         authorization: Annotated[str | None, Header()] = None) -> AccountCreated:
    """Admin: create an officer or a platform client; without `password` one is generated and returned once."""
    async def work(gw: GatewayState, store: AccountStore) -> AccountCreated:
        await check_unit(gw, data.role, data.unit_id)
        secret = data.password or (new_client_secret() if data.kind == "client" else new_password())
        account = await store.create(username=data.username, kind=data.kind, role=data.role, unit_id=data.unit_id,
                                     secret=secret)
        out = AccountOut.model_validate(account).model_dump()
        return AccountCreated(**out, secret=None if data.password else secret)
    return await _as_admin(request, authorization, 201, work)


@router.get("/api/v1/accounts", response_model=Page[AccountOut])
async def list_accounts(request: Request, page: PageDep, authorization: Annotated[str | None, Header()] = None,
                        kind: Literal["user", "client"] | None = None, role: Role | None = None,
                        unit_id: Annotated[str | None, Query(max_length=64)] = None) -> Page[AccountOut]:
    """Admin: accounts by username, optionally of one kind, role or unit."""
    async def work(gw: GatewayState, store: AccountStore) -> Page[AccountOut]:
        assert gw.sessions is not None
        async with gw.sessions() as session:
            rows, next_cursor = await ACCOUNT_ORDER.page(session, store.query(kind=kind, role=role, unit_id=unit_id),
                                                         page)
        return Page[AccountOut](items=[AccountOut.model_validate(r) for r in rows], next_cursor=next_cursor)
    return await _as_admin(request, authorization, 200, work)


@router.get("/api/v1/accounts/{username}", response_model=AccountOut)
async def get_account(username: str, request: Request,
                      authorization: Annotated[str | None, Header()] = None) -> AccountOut:
    """Admin: one account."""
    async def work(gw: GatewayState, store: AccountStore) -> AccountOut:
        account = await store.get(username)
        if account is None:
            raise NotFound(f"no account {username}")
        return AccountOut.model_validate(account)
    return await _as_admin(request, authorization, 200, work)


@router.patch("/api/v1/accounts/{username}", response_model=AccountOut)
async def change_account(username: str, data: AccountPatch, request: Request,
                         authorization: Annotated[str | None, Header()] = None) -> AccountOut:
    """Admin: change an account's role or unit, or disable (`disabled: true`) or re-enable it."""
    async def work(gw: GatewayState, store: AccountStore) -> AccountOut:
        if data.role is not None or data.unit_id is not None:
            current = await store.get(username)
            if current is not None:
                await check_unit(gw, data.role or current.role, data.unit_id or current.unit_id)
        return AccountOut.model_validate(await store.update(username, role=data.role, unit_id=data.unit_id,
                                                            disabled=data.disabled))
    return await _as_admin(request, authorization, 200, work)


@router.post("/api/v1/accounts/{username}/password", response_model=SecretOut)
async def reset_password(username: str, request: Request,
                         data: Annotated[PasswordIn | None, Body(openapi_examples=RESET_EXAMPLES)] = None,
                         authorization: Annotated[str | None, Header()] = None) -> SecretOut:
    """Admin: a new password or client secret (generated unless given, then shown once); the account's
    refresh tokens are revoked."""
    async def work(gw: GatewayState, store: AccountStore) -> SecretOut:
        given = data.password if data else None
        current = await store.get(username)
        secret = given or (new_client_secret() if current is not None and current.kind == "client"
                           else new_password())
        await store.reset_secret(username, secret)
        assert gw.refresh_tokens is not None
        await gw.refresh_tokens.revoke_user(username)
        return SecretOut(username=username, secret=None if given else secret)
    return await _as_admin(request, authorization, 200, work)
