"""The accounts API (`/api/v1/accounts…`): admins create, list (paged), change, disable and reset accounts; the
unit of a station or squadron account is checked with dispatch; every write is audited, never a secret; the CLI
and the API share the store."""
from __future__ import annotations

import asyncio
import json

import pytest

from gateway.app import create_app
from tests.gateway.test_accounts import _cli, _settings
from tests.gateway.upstreams import serving_upstream
from tests.helpers import assert_problem, every_item, serving

UNITS = {"ps-east": "station", "sq-north": "squadron", "brigade": "brigade"}


async def fake_dispatch(scope: dict, receive, send) -> None:  # noqa: ANN001 - ASGI
    """Answers GET /api/v1/units/{id} for the units above (404 for any other)."""
    if scope["type"] != "http":
        return
    unit = scope["path"].removeprefix("/api/v1/units/")
    status, body = (200, {"id": unit, "name": unit, "kind": UNITS[unit], "parent_id": None}) if unit in UNITS \
        else (404, {"status": 404})
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def dispatch() -> object:
    with serving_upstream(fake_dispatch) as url:
        yield url


async def _token(gw, username: str, password: str, grant: str = "password") -> dict[str, str] | None:  # noqa: ANN001
    data = {"grant_type": "password", "username": username, "password": password} if grant == "password" else \
        {"grant_type": "client_credentials", "client_id": username, "client_secret": password}
    r = await gw.post("/api/v1/auth/token", data=data)
    return {"authorization": "Bearer " + r.json()["access_token"]} if r.status_code == 200 else None


async def test_admins_manage_accounts_through_the_api(database_url: str, dispatch: str) -> None:
    url = database_url
    await asyncio.to_thread(_cli, url, "add-user", "root", "--role", "admin", "--password", "root-pass-1")
    app = create_app(_settings(url, dispatch_url=dispatch, audit_flush_s=0.01))
    async with serving(app) as gw:
        admin = await _token(gw, "root", "root-pass-1")
        assert admin is not None
        created = await gw.post("/api/v1/accounts", headers=admin,
                                json={"username": "east.1", "role": "station", "unit_id": "ps-east"})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert len(secret) >= 12 and created.json()["unit_id"] == "ps-east"
        station = await _token(gw, "east.1", secret)
        assert station is not None
        assert (await gw.get("/api/v1/me", headers=station)).json()["unit_id"] == "ps-east"

        given = await gw.post("/api/v1/accounts", headers=admin,
                              json={"username": "north", "role": "squadron", "unit_id": "sq-north",
                                    "password": "chosen-pw-1"})
        assert given.status_code == 201 and given.json()["secret"] is None
        client = await gw.post("/api/v1/accounts", headers=admin,
                               json={"username": "platform-a", "kind": "client", "role": "platform"})
        assert client.status_code == 201
        assert await _token(gw, "platform-a", client.json()["secret"], grant="client") is not None

        # refused: a duplicate, an unknown unit, a unit of the wrong kind, a client that is not a platform,
        # an unknown field; none of them stored
        assert_problem(await gw.post("/api/v1/accounts", headers=admin,
                                     json={"username": "east.1", "role": "command"}), 409)
        for body in ({"username": "x1", "role": "station", "unit_id": "ps-nowhere"},
                     {"username": "x2", "role": "station", "unit_id": "sq-north"},
                     {"username": "x3", "role": "squadron", "unit_id": "brigade"},
                     {"username": "x4", "kind": "client", "role": "admin"},
                     {"username": "x5", "role": "admin", "secret_hash": "x"},
                     {"username": "bad name", "role": "admin"}):
            assert_problem(await gw.post("/api/v1/accounts", headers=admin, json=body), 422)

        listed = await every_item(gw, "/api/v1/accounts", headers=admin, limit=2)
        assert [a["username"] for a in listed] == ["east.1", "north", "platform-a", "root"]
        assert all("secret" not in a and "secret_hash" not in a for a in listed)
        stations = (await gw.get("/api/v1/accounts", headers=admin, params={"role": "station"})).json()["items"]
        assert [a["username"] for a in stations] == ["east.1"]
        assert_problem(await gw.get("/api/v1/accounts", headers=admin, params={"cursor": "junk"}), 422)

        # only admins: a station user neither lists nor creates
        assert_problem(await gw.get("/api/v1/accounts", headers=station), 403)
        assert_problem(await gw.post("/api/v1/accounts", headers=station,
                                     json={"username": "mine", "role": "admin"}), 403)
        assert_problem(await gw.get("/api/v1/accounts"), 401)

        # reset: the old password stops working, the new one works, refresh tokens are revoked
        refresh = (await gw.post("/api/v1/auth/token", data={"grant_type": "password", "username": "north",
                                                              "password": "chosen-pw-1"})).json()["refresh_token"]
        reset = await gw.post("/api/v1/accounts/north/password", headers=admin)
        assert reset.status_code == 200, reset.text
        assert await _token(gw, "north", "chosen-pw-1") is None
        assert await _token(gw, "north", reset.json()["secret"]) is not None
        assert_problem(await gw.post("/api/v1/auth/token", data={"grant_type": "refresh_token",
                                                                 "refresh_token": refresh}), 401)
        assert_problem(await gw.post("/api/v1/accounts/nobody/password", headers=admin), 404)

        # change the unit, then disable: the account can no longer log in
        moved = await gw.patch("/api/v1/accounts/north", headers=admin, json={"role": "station",
                                                                              "unit_id": "ps-east"})
        assert moved.status_code == 200 and moved.json()["role"] == "station", moved.text
        disabled = await gw.patch("/api/v1/accounts/east.1", headers=admin, json={"disabled": True})
        assert disabled.json()["disabled"] is True
        assert await _token(gw, "east.1", secret) is None
        assert (await gw.get("/api/v1/accounts/east.1", headers=admin)).json()["disabled"] is True
        assert_problem(await gw.patch("/api/v1/accounts/nobody", headers=admin, json={"disabled": True}), 404)

        # audited: who did which write with what outcome (the refused ones too), never a secret
        await app.state.gateway.core.audit.flush()
        audit = (await gw.get("/api/v1/audit", headers=admin, params={"limit": 500})).json()["items"]
        writes = [(e["method"], e["path"], e["status"], e["username"]) for e in audit
                  if e["path"].startswith("/api/v1/accounts")]
        assert ("POST", "/api/v1/accounts", 201, "root") in writes
        assert ("POST", "/api/v1/accounts", 403, "east.1") in writes
        assert ("POST", "/api/v1/accounts/north/password", 200, "root") in writes
        assert ("PATCH", "/api/v1/accounts/east.1", 200, "root") in writes
        assert secret not in json.dumps(audit)

    # the CLI reads the same store
    listed_by_cli = await asyncio.to_thread(_cli, url, "list")
    assert "platform-a" in listed_by_cli and "east.1" in listed_by_cli
