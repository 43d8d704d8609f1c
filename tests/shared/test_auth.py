"""Bearer tokens (issue, verify, every way a token is refused, key rotation) and the demo-secret guard of Settings."""
from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from pydantic import ValidationError

from shared.auth import ALGORITHM, Identity, SigningKey, bearer, issue_token, public_keyset, verify_token
from shared.errors import Unauthorized
from shared.settings import DEMO_IDENTITY_KEY, Settings

KEY = SigningKey.generate("k1")
SETTINGS = Settings(environment="test", jwt_public_keys=public_keyset(KEY))
OLD_SHARED_SECRET = "demo-only-jwt-secret-do-not-use-in-production"  # what every component held before


def _claims(**overrides: object) -> dict:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": "alice", "role": "command", "unit_id": None, "iss": SETTINGS.jwt_issuer,
              "aud": SETTINGS.jwt_audience, "iat": now, "exp": now + dt.timedelta(minutes=5), "typ": "access",
              "jti": "j1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def _sign(claims: dict, *, key: object = None, algorithm: str = ALGORITHM, kid: str = "k1") -> str:
    return jwt.encode(claims, key or KEY.key, algorithm=algorithm, headers={"kid": kid})


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part, default=str).encode()).decode().rstrip("=")


def test_issued_token_verifies_to_the_same_identity() -> None:
    identity = Identity(username="s1", role="station", unit_id="s1")
    assert verify_token(SETTINGS, issue_token(SETTINGS, identity, key=KEY)) == identity


def test_only_a_gateway_key_mints() -> None:
    with pytest.raises(RuntimeError, match="only the gateway"):
        issue_token(SETTINGS, Identity(username="a", role="admin"))


def test_hand_signed_token_with_all_claims_verifies() -> None:
    assert verify_token(SETTINGS, _sign(_claims())) == Identity(username="alice", role="command")


def test_token_carries_configured_ttl() -> None:
    token = issue_token(SETTINGS, Identity(username="a", role="admin"), ttl_s=120, key=KEY)
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
    """Another Ed25519 key under the accepted kid, or under its own kid: refused."""
    other = SigningKey.generate("k1")
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(), key=other.key))
    with pytest.raises(Unauthorized, match="kid"):
        verify_token(SETTINGS, issue_token(SETTINGS, Identity(username="a", role="admin"),
                                           key=SigningKey.generate("k2")))


@pytest.mark.parametrize("secret", [OLD_SHARED_SECRET, "any-shared-secret-" + "y" * 64])
@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_token_signed_with_a_shared_secret_is_refused(secret: str, algorithm: str) -> None:
    with pytest.raises(Unauthorized, match="EdDSA"):
        verify_token(SETTINGS, _sign(_claims(), key=secret, algorithm=algorithm))


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """The classic confusion: the public key's bytes used as an HMAC secret."""
    public = json.loads(public_keyset(KEY))["keys"][0]["x"]
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, _sign(_claims(), key=public, algorithm="HS256"))


def test_rotation_accepts_both_keys_until_the_old_one_is_retired() -> None:
    new = SigningKey.generate("k2")
    during = Settings(environment="test", jwt_public_keys=public_keyset(new, KEY))
    after = Settings(environment="test", jwt_public_keys=public_keyset(new))
    identity = Identity(username="a", role="admin")
    old_token, new_token = issue_token(during, identity, key=KEY), issue_token(during, identity, key=new)
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    assert verify_token(during, old_token) == verify_token(during, new_token) == identity
    assert verify_token(after, new_token) == identity
    with pytest.raises(Unauthorized, match="kid"):
        verify_token(after, old_token)


def test_a_public_key_set_never_holds_a_private_key() -> None:
    with pytest.raises(ValidationError, match="private"):
        Settings(jwt_public_keys=json.dumps({"keys": [json.loads(KEY.private_jwk())]}))
    with pytest.raises(ValueError, match="private"):
        public_keyset(json.loads(KEY.private_jwk()))
    assert "private" not in Settings.model_fields and "jwt_private_key" not in Settings.model_fields


def test_tampered_payload_is_refused() -> None:
    header, _, signature = _sign(_claims()).split(".")
    forged = _b64(_claims(role="admin") | {"iat": 0, "exp": 4_000_000_000})
    with pytest.raises(Unauthorized):
        verify_token(SETTINGS, f"{header}.{forged}.{signature}")


def test_token_signed_with_hs512_is_refused() -> None:
    token = _sign(_claims(), key="a-shared-secret-" + "x" * 64, algorithm="HS512")
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


@pytest.mark.parametrize("environment", ["development", "production"])
def test_outside_the_demo_the_demo_identity_key_is_refused(environment: str) -> None:
    with pytest.raises(ValidationError, match="JIAOZHI_IDENTITY_HASH_KEY"):
        Settings(environment=environment)


@pytest.mark.parametrize("environment", ["demo", "test"])
def test_the_demo_and_tests_accept_the_demo_identity_key(environment: str) -> None:
    assert Settings(environment=environment).identity_hash_key.get_secret_value() == DEMO_IDENTITY_KEY


def test_production_with_real_secrets_builds() -> None:
    settings = Settings(environment="production", identity_hash_key="a-real-identity-key")
    assert settings.environment == "production"
