"""Bearer tokens (issue, verify, every way a token is refused) and the production-secret guard of Settings."""
from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from pydantic import ValidationError

from shared.auth import ALGORITHM, Identity, bearer, issue_token, verify_token
from shared.errors import Unauthorized
from shared.settings import DEMO_IDENTITY_KEY, DEMO_SECRET, Settings

SETTINGS = Settings(environment="test", jwt_secret="a-test-secret-" + "x" * 64)


def _claims(**overrides: object) -> dict:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": "alice", "role": "command", "unit_id": None, "iss": SETTINGS.jwt_issuer,
              "aud": SETTINGS.jwt_audience, "iat": now, "exp": now + dt.timedelta(minutes=5), "typ": "access",
              "jti": "j1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def _sign(claims: dict, *, key: str | None = None, algorithm: str = ALGORITHM) -> str:
    return jwt.encode(claims, key or SETTINGS.jwt_secret.get_secret_value(), algorithm=algorithm)


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part, default=str).encode()).decode().rstrip("=")


def test_issued_token_verifies_to_the_same_identity() -> None:
    identity = Identity(username="s1", role="station", unit_id="s1")
    assert verify_token(SETTINGS, issue_token(SETTINGS, identity)) == identity


def test_hand_signed_token_with_all_claims_verifies() -> None:
    assert verify_token(SETTINGS, _sign(_claims())) == Identity(username="alice", role="command")


def test_token_carries_configured_ttl() -> None:
    token = issue_token(SETTINGS, Identity(username="a", role="admin"), ttl_s=120)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


def test_expired_token_is_refused() -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(iat=past, exp=past + dt.timedelta(minutes=5))))


def test_wrong_audience_is_refused() -> None:
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(aud="someone-else")))


def test_wrong_issuer_is_refused() -> None:
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(iss="evil-gateway")))


@pytest.mark.parametrize("claim", ["role", "sub", "exp", "iat", "iss", "aud"])
def test_token_missing_a_required_claim_is_refused(claim: str) -> None:
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(**{claim: ...})))


def test_unknown_role_is_refused() -> None:
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(role="superuser")))


def test_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(), key="another-secret-" + "y" * 64))


def test_tampered_payload_is_refused() -> None:
    header, _, signature = _sign(_claims()).split(".")
    forged = _b64(_claims(role="admin") | {"iat": 0, "exp": 4_000_000_000})
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, f"{header}.{forged}.{signature}")


def test_token_signed_with_hs512_is_refused() -> None:
    token = _sign(_claims(), algorithm="HS512")
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, token)


def test_unsigned_alg_none_token_is_refused() -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    payload = _claims(iat=now, exp=now + 300)
    for alg in ("none", "None", "NONE"):
        token = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(payload)}."
        with pytest.raises(Unauthorized):
            verify_token(SETTINGS, token)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "a.b"])
def test_garbage_token_is_refused(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, garbage)


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"),
])
def test_bearer_extracts_the_token(header: str, token: str) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "abc.def.ghi",
                                    "Token abc"])
def test_bearer_refuses_a_missing_or_malformed_header(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        bearer(header)


def test_production_refuses_the_demo_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="JIAOZHI_JWT_SECRET"):
        Settings(environment="production", identity_hash_key="a-real-identity-key")


def test_production_refuses_the_demo_identity_key() -> None:
    with pytest.raises(ValidationError, match="JIAOZHI_IDENTITY_HASH_KEY"):
        Settings(environment="production", jwt_secret="a-real-jwt-secret-0123456789")


def test_production_with_real_secrets_builds() -> None:
    settings = Settings(environment="production", jwt_secret="a-real-jwt-secret-0123456789",
                        identity_hash_key="a-real-identity-key")
    assert settings.environment == "production"
    assert settings.jwt_secret.get_secret_value() not in (DEMO_SECRET, DEMO_IDENTITY_KEY)


def test_demo_environment_accepts_the_demo_secret() -> None:
    assert Settings(environment="demo").jwt_secret.get_secret_value() == DEMO_SECRET
