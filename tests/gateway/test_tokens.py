"""The JWT negative suite: every malformed, expired, misaddressed or unsigned token is a 401 problem, at the
gateway (its own routes and forwarded ones) and at a service (which accepts only the gateway's internal tokens)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import tempfile
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import jwt
import pytest
from fastapi import FastAPI

from deploy.natsd import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from shared.auth import ALGORITHM, Identity, SigningKey, issue_internal_token, issue_token
from shared.errors import install_problem_handlers
from shared.runtime import CallerDep
from shared.settings import ServiceSettings
from tests.helpers import GATEWAY_KEY, assert_problem, serving

OLD_SHARED_SECRET = "demo-only-jwt-secret-do-not-use-in-production"  # what every component held before
STRANGER = SigningKey.generate(GATEWAY_KEY.kid)  # another Ed25519 key claiming the gateway's key id


def _settings() -> GatewaySettings:
    dead = f"http://127.0.0.1:{free_port()}"
    return GatewaySettings(environment="test", log_level="WARNING",
                           database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='jz-gw-')}/gw.db",
                           classification_url=dead, tracing_url=dead, dispatch_url=dead, assessment_url=dead)


SETTINGS = _settings()


def _claims(**overrides: object) -> dict:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": "command", "role": "command", "unit_id": None, "typ": "access", "jti": "j-1",
              "iss": SETTINGS.jwt_issuer, "aud": SETTINGS.jwt_audience, "iat": now,
              "exp": now + dt.timedelta(minutes=5)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def _sign(claims: dict, key: object = None, algorithm: str = ALGORITHM, kid: str = GATEWAY_KEY.kid) -> str:
    return jwt.encode(claims, key or GATEWAY_KEY.key, algorithm=algorithm, headers={"kid": kid})


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part, default=str).encode()).decode().rstrip("=")


def _unsigned(alg: str) -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(_claims(iat=now, exp=now + 300))}."


PAST = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
FUTURE = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)

BAD_TOKENS = {
    "expired": lambda: _sign(_claims(iat=PAST, exp=PAST + dt.timedelta(minutes=5))),
    "wrong audience": lambda: _sign(_claims(aud="another-api")),
    "internal audience at the gateway": lambda: issue_internal_token(SETTINGS, Identity(username="c", role="command")),
    "wrong issuer": lambda: _sign(_claims(iss="evil-gateway")),
    **{f"missing {claim}": (lambda claim=claim: _sign(_claims(**{claim: ...})))
       for claim in ("exp", "iat", "iss", "aud", "sub", "role", "typ", "jti")},
    "bad signature": lambda: _sign(_claims(), key=STRANGER.key),
    "another key's id": lambda: _sign(_claims(), key=SigningKey.generate("k-other").key, kid="k-other"),
    "no key id": lambda: jwt.encode(_claims(), GATEWAY_KEY.key, algorithm=ALGORITHM),
    "the old shared secret (HS256)": lambda: _sign(_claims(), key=OLD_SHARED_SECRET, algorithm="HS256"),
    "tampered payload": lambda: ".".join((_sign(_claims()).split(".")[0], _b64(_claims(role="admin", iat=0)),
                                          _sign(_claims()).split(".")[2])),
    "HS512": lambda: _sign(_claims(), key="x" * 64, algorithm="HS512"),
    "HS384": lambda: _sign(_claims(), key="x" * 64, algorithm="HS384"),
    "alg none": lambda: _unsigned("none"),
    "alg None": lambda: _unsigned("None"),
    "alg NONE": lambda: _unsigned("NONE"),
    "refresh token as access": lambda: issue_token(SETTINGS, Identity(username="c", role="command"), typ="refresh"),
    "unknown role": lambda: _sign(_claims(role="superuser")),
    "station without its unit": lambda: _sign(_claims(sub="ps-x", role="station")),
    "not yet valid": lambda: _sign(_claims(nbf=FUTURE)),
    "issued in the future": lambda: _sign(_claims(iat=FUTURE, exp=FUTURE + dt.timedelta(minutes=5))),
    "garbage": lambda: "not.a.token",
}


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(SETTINGS)) as client:
        yield client


@pytest.mark.parametrize("case", list(BAD_TOKENS))
@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/tasks", "/api/v1/incidents:batch"])
async def test_bad_token_is_a_401_at_the_gateway(gateway: httpx.AsyncClient, case: str, path: str) -> None:
    method = "POST" if path.endswith(":batch") else "GET"
    response = await gateway.request(method, path, headers={"authorization": f"Bearer {BAD_TOKENS[case]()}"})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert body["type"].endswith("/unauthorized")


async def test_a_good_token_passes_the_same_door(gateway: httpx.AsyncClient) -> None:
    """The control: the same request with a valid token gets past authentication (503: nothing behind it)."""
    headers = {"authorization": f"Bearer {_sign(_claims())}"}
    assert (await gateway.get("/api/v1/me", headers=headers)).json()["role"] == "command"
    assert_problem(await gateway.get("/api/v1/tasks", headers=headers), 503)


@pytest.mark.parametrize("header", ["", "Bearer", "Basic dXNlcjpwYXNz", "Token abc"])
async def test_missing_or_malformed_header_is_a_401(gateway: httpx.AsyncClient, header: str) -> None:
    response = await gateway.get("/api/v1/tasks", headers={"authorization": header} if header else {})
    assert_problem(response, 401)
    assert "www-authenticate" in response.headers


#: a service's settings: the public keys only (from the suite's environment), never a private one
SERVICE_SETTINGS = ServiceSettings(environment="test")


def _service() -> FastAPI:
    app = FastAPI()
    app.state.rt = SimpleNamespace(settings=SERVICE_SETTINGS)
    install_problem_handlers(app)

    @app.get("/api/v1/whoami")
    async def whoami(who: CallerDep) -> dict:
        return who.model_dump()

    return app


@pytest.mark.parametrize("case", [c for c in BAD_TOKENS if c != "internal audience at the gateway"])
async def test_bad_token_is_a_401_at_a_service(case: str) -> None:
    token = BAD_TOKENS[case]()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_service()), base_url="http://s") as client:
        assert_problem(await client.get("/api/v1/whoami", headers={"authorization": f"Bearer {token}"}), 401)


async def test_a_service_refuses_a_public_access_token_and_takes_the_gateways() -> None:
    """A caller's own token replayed straight at a service is refused; only the gateway's internal one works."""
    identity = Identity(username="ps-1", role="station", unit_id="ps-1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_service()), base_url="http://s") as client:
        public = await client.get("/api/v1/whoami",
                                  headers={"authorization": f"Bearer {issue_token(SETTINGS, identity)}"})
        internal = await client.get("/api/v1/whoami",
                                    headers={"authorization": f"Bearer {issue_internal_token(SETTINGS, identity)}"})
    assert_problem(public, 401)
    assert internal.json() == identity.model_dump()


FORGERIES = {
    "the old shared secret": lambda claims: _sign(claims, key=OLD_SHARED_SECRET, algorithm="HS256"),
    "another key under the gateway's kid": lambda claims: _sign(claims, key=STRANGER.key),
    "another key under its own kid": lambda claims: _sign(claims, key=STRANGER.key, kid="k-stranger"),
    "the public key as an HMAC secret": lambda claims: _sign(claims, key=GATEWAY_KEY.public_jwk()["x"],
                                                             algorithm="HS256"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
async def test_a_service_refuses_internal_tokens_not_signed_by_the_gateways_key(case: str) -> None:
    """Every claim right, only the signature not the gateway's: refused; the same claims signed by the gateway
    pass (the control)."""
    claims = _claims(aud=SERVICE_SETTINGS.jwt_internal_audience, typ="internal")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_service()), base_url="http://s") as client:
        good = await client.get("/api/v1/whoami", headers={"authorization": f"Bearer {_sign(claims)}"})
        forged = await client.get("/api/v1/whoami",
                                  headers={"authorization": f"Bearer {FORGERIES[case](claims)}"})
    assert good.status_code == 200, good.text
    assert_problem(forged, 401)


@pytest.mark.parametrize("case", list(FORGERIES))
async def test_the_gateway_refuses_access_tokens_not_signed_by_its_key(gateway: httpx.AsyncClient, case: str) -> None:
    assert_problem(await gateway.get("/api/v1/me", headers={"authorization": f"Bearer {FORGERIES[case](_claims())}"}),
                   401)
