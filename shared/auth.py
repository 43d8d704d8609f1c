"""Bearer tokens: public ones the gateway issues to callers, internal ones it passes on to services.

Every token is an EdDSA (Ed25519) JWT with a pinned algorithm, a key id (`kid`), issuer, audience,
expiry and required claims. Only the gateway holds a private key (`JIAOZHI_JWT_PRIVATE_KEY`, a JWK);
every component verifies with the public keys (`JIAOZHI_JWT_PUBLIC_KEYS`, a JWK set), so a service,
even a compromised one, can verify tokens but never mint one. A rotation publishes the new public key
beside the old one, then moves the gateway to the new private key, then retires the old public key:
tokens of both keys are accepted while both are listed (docs/GATEWAY.md).

Three kinds, told apart by the `typ` claim and the audience, so one can never stand in for another:

- `access` (audience `jwt_audience`): what a caller sends to the gateway;
- `refresh` (same audience, long-lived): only good at the token endpoint, for the mobile app;
- `internal` (audience `jwt_internal_audience`, one minute): what the gateway sends a service for
  one caller. Services accept nothing else, so a public token replayed straight at a service is
  refused and the only way in is through the gateway's checks.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import Unauthorized
from shared.settings import Settings

ALGORITHM = "EdDSA"  # pinned: a token with any other algorithm (HS256 with the old shared secret, none) is refused
Role = Literal["admin", "command", "squadron", "station", "platform"]
TokenType = Literal["access", "refresh", "internal"]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "role", "typ", "jti"]
INTERNAL_TTL_S = 60
LEEWAY_S = 5  # clock skew tolerated between gateway and service hosts


class Identity(BaseModel):
    """Who is calling: username, role and the unit whose jurisdiction bounds what they see."""

    model_config = ConfigDict(frozen=True)
    username: str
    role: Role
    unit_id: str | None = None

    @property
    def sees_whole_district(self) -> bool:
        """Command-centre and admin users see every station."""
        return self.role in ("admin", "command")


@dataclass(frozen=True)
class SigningKey:
    """The gateway's private key and its id: what tokens are signed with (nothing else holds one)."""

    kid: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        """A new random key (its id: the date and a random suffix, unless given)."""
        kid = kid or f"{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(4)}"
        return cls(kid, Ed25519PrivateKey.generate())

    @classmethod
    def from_jwk(cls, text: str) -> SigningKey:
        """The key in a private OKP/Ed25519 JWK (JSON) with its `kid`."""
        return _signing_key(text.strip())

    def private_jwk(self) -> str:
        """This key as a private JWK (JSON): the value of JIAOZHI_JWT_PRIVATE_KEY."""
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key))
        return json.dumps(jwk | {"kid": self.kid, "alg": ALGORITHM, "use": "sig"})

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (no private part)."""
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        return jwk | {"kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def public_keyset(*keys: SigningKey | dict[str, Any]) -> str:
    """A JWK set (JSON) of these keys' public halves: the value of JIAOZHI_JWT_PUBLIC_KEYS."""
    jwks = [k.public_jwk() if isinstance(k, SigningKey) else k for k in keys]
    for jwk in jwks:
        if "d" in jwk:
            raise ValueError("a public key set must not hold a private key")
    return json.dumps({"keys": jwks})


@functools.lru_cache(maxsize=16)
def _signing_key(text: str) -> SigningKey:
    try:
        jwk = json.loads(text)
        key = jwt.algorithms.OKPAlgorithm.from_jwk(jwk)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ValueError(f"JIAOZHI_JWT_PRIVATE_KEY is not an Ed25519 private JWK: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey) or not jwk.get("kid"):
        raise ValueError("the signing key must be a private Ed25519 JWK with a kid")
    return SigningKey(str(jwk["kid"]), key)


@functools.lru_cache(maxsize=16)
def verifying_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """kid → public key, from a JWK set (JSON); private keys in it are refused."""
    if not text.strip():
        return {}
    try:
        jwks = json.loads(text)
        items = jwks["keys"] if isinstance(jwks, dict) else jwks
        keys = {str(jwk["kid"]): jwt.algorithms.OKPAlgorithm.from_jwk(jwk) for jwk in items}
    except (ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
        raise ValueError(f"JIAOZHI_JWT_PUBLIC_KEYS is not a JWK set of Ed25519 keys with kids: {exc}") from exc
    if any(not isinstance(key, Ed25519PublicKey) for key in keys.values()):
        raise ValueError("JIAOZHI_JWT_PUBLIC_KEYS must hold public Ed25519 keys only (never a private one)")
    return keys


def signing_key_of(settings: Settings) -> SigningKey:
    """The gateway's signing key from its settings; only the gateway's settings have one."""
    private = getattr(settings, "jwt_private_key", None)
    if private is None:
        raise RuntimeError("only the gateway signs tokens: JIAOZHI_JWT_PRIVATE_KEY is not set")
    return SigningKey.from_jwk(private.get_secret_value())


def keys_of(settings: Settings) -> dict[str, Ed25519PublicKey]:
    """The public keys a component accepts tokens of (the gateway also its own key's public half)."""
    keys = verifying_keys(settings.jwt_public_keys)
    private = getattr(settings, "jwt_private_key", None)
    if private is not None:
        own = SigningKey.from_jwk(private.get_secret_value())
        keys = keys | {own.kid: own.key.public_key()}
    return keys


def issue_token(settings: Settings, identity: Identity, *, ttl_s: int | None = None,
                typ: TokenType = "access", key: SigningKey | None = None,
                extra: dict[str, Any] | None = None) -> str:
    """A signed token for the identity (an access token unless `typ` says otherwise), signed with the
    gateway's key (from its settings, or `key`: the tests' and benches' stand-in for the gateway)."""
    key = key or signing_key_of(settings)
    now = dt.datetime.now(dt.UTC)
    if ttl_s is None:
        ttl_s = {"access": settings.token_ttl_s, "refresh": settings.refresh_ttl_s, "internal": INTERNAL_TTL_S}[typ]
    claims = {
        "sub": identity.username,
        "role": identity.role,
        "unit_id": identity.unit_id,
        "typ": typ,
        "jti": uuid.uuid4().hex,
        "iss": settings.jwt_issuer,
        "aud": _audience(settings, typ),
        "iat": now,
        "exp": now + dt.timedelta(seconds=ttl_s),
    } | (extra or {})
    return jwt.encode(claims, key.key, algorithm=ALGORITHM, headers={"kid": key.kid})


def issue_internal_token(settings: Settings, identity: Identity, *, key: SigningKey | None = None) -> str:
    """A one-minute token a service accepts for this identity (minted by the gateway per caller)."""
    return issue_token(settings, identity, typ="internal", key=key)


def decode_claims(settings: Settings, token: str, *, typ: TokenType = "access") -> dict:
    """The verified claims of a token of the given kind; Unauthorized otherwise."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:  # PyJWT refuses it too; say so plainly
            raise Unauthorized(f"invalid token: algorithm must be {ALGORITHM}")
        key = keys_of(settings).get(str(header.get("kid")))
        if key is None:
            raise Unauthorized("invalid token: signed with a key this component does not accept (kid)")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=_audience(settings, typ),
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True, "verify_exp": True,
                     "verify_iat": True, "verify_aud": True, "verify_iss": True},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    if claims.get("typ") != typ:
        raise Unauthorized(f"invalid token: a {claims.get('typ')} token is not an {typ} token")
    return claims


def identity_of(claims: dict) -> Identity:
    """The identity carried by verified claims; Unauthorized when they do not make one."""
    try:
        identity = Identity(username=claims["sub"], role=claims["role"], unit_id=claims.get("unit_id"))
    except (ValidationError, KeyError, TypeError) as exc:
        raise Unauthorized("invalid token: claims do not name a valid identity") from exc
    if identity.role in ("station", "squadron") and not identity.unit_id:
        raise Unauthorized(f"invalid token: a {identity.role} token must name its unit")
    return identity


def verify_token(settings: Settings, token: str, *, typ: TokenType = "access") -> Identity:
    """The identity in a valid token of the given kind (access by default); Unauthorized otherwise."""
    return identity_of(decode_claims(settings, token, typ=typ))


_verified: dict[tuple[str, str], tuple[Identity, float]] = {}


def verify_internal_token(settings: Settings, token: str) -> Identity:
    """The identity in a valid internal token (what services accept); Unauthorized otherwise.

    The gateway sends one internal token per caller for up to a minute, so a verified one is remembered
    until its expiry (an Ed25519 check costs about a tenth of a millisecond); a changed key set forgets it."""
    cache_key = (token, settings.jwt_public_keys + settings.jwt_internal_audience + settings.jwt_issuer)
    hit = _verified.get(cache_key)
    if hit is not None and hit[1] > time.time():
        return hit[0]
    claims = decode_claims(settings, token, typ="internal")
    identity = identity_of(claims)
    if len(_verified) >= 50_000:
        _verified.clear()
    _verified[cache_key] = (identity, float(claims["exp"]))
    return identity


def bearer(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer …` header."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected `Authorization: Bearer <token>`")
    return token


def _audience(settings: Settings, typ: TokenType) -> str:
    return settings.jwt_internal_audience if typ == "internal" else settings.jwt_audience
